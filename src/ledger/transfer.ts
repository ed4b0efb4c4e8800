import { Ajv } from 'ajv';
import { LeapfrogError } from '../errors.js';
import { EXPORT_FORMAT, type EvidenceStore, type NewEvidence } from './evidence.js';

/**
 * Carrying evidence between ledgers: a rehearsal's ledger knows what each
 * step leaves behind; `ledger export` writes that evidence as JSON and
 * `ledger import` adds it to the production host's ledger, so a crash there
 * is judged against what the rehearsal saw. Rows keep their attempt id
 * (importing twice adds nothing) and say where they were recorded.
 */

const ROW_FIELDS = ['attempt', 'source', 'chain', 'chain_sha256', 'step_id', 'run_kind', 'env_sha256', 'database', 'phase', 'version', 'sha256', 'shape', 'created_at'] as const;

const schema = {
  type: 'object',
  required: ['format', 'evidence'],
  properties: {
    format: { const: EXPORT_FORMAT },
    evidence: {
      type: 'array',
      items: {
        type: 'object',
        required: [...ROW_FIELDS],
        additionalProperties: false,
        properties: {
          attempt: { type: 'string', minLength: 1 },
          source: { type: 'string', minLength: 1 },
          chain: { type: 'string', minLength: 1 },
          chain_sha256: { type: 'string' },
          step_id: { type: 'string', minLength: 1 },
          run_kind: { type: 'string' },
          env_sha256: { type: 'string' },
          database: { type: 'string', minLength: 1 },
          phase: { enum: ['before', 'after'] },
          version: { type: 'string' },
          sha256: { type: ['string', 'null'] },
          shape: { type: ['string', 'null'] },
          created_at: { type: 'string' },
        },
      },
    },
  },
};

const validate = new Ajv({ allErrors: true, allowUnionTypes: true }).compile<{ format: string; evidence: NewEvidence[] }>(schema);

export function exportEvidence(store: EvidenceStore, origin: (stepRow: number | null) => string): { format: string; evidence: Record<string, unknown>[] } {
  return {
    format: EXPORT_FORMAT,
    evidence: store.all().map((r) => {
      const out: Record<string, unknown> = {};
      for (const f of ROW_FIELDS) out[f] = r[f];
      if (r.source === 'local') out.source = origin(r.step_row);
      return out;
    }),
  };
}

/** Parse an export (every problem at once, naming the file) and add its rows; returns how many were new. */
export function importEvidence(store: EvidenceStore, file: string, text: string): { rows: number; added: number } {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new LeapfrogError('input', `${file}: not JSON (${(err as Error).message}); expected the output of \`leapfrog ledger export\``);
  }
  if (!validate(data)) {
    const problems = (validate.errors ?? []).map((e) => `${e.instancePath || '(top)'} ${e.message ?? ''}${e.keyword === 'const' ? ` (${EXPORT_FORMAT})` : ''}`);
    throw new LeapfrogError('input', `${file}: not an evidence export of this leapfrog (${problems.length} problem${problems.length === 1 ? '' : 's'}); expected the output of \`leapfrog ledger export\`:`, { details: problems.slice(0, 20) });
  }
  for (const [i, r] of data.evidence.entries()) {
    for (const f of ['version', 'shape'] as const) {
      const v = r[f];
      try {
        if (v !== null) JSON.parse(v);
      } catch {
        throw new LeapfrogError('input', `${file}: /evidence/${i}/${f} is not JSON; expected the output of \`leapfrog ledger export\``);
      }
    }
  }
  const added = store.add(data.evidence.map((r) => ({ ...r, step_row: null })));
  return { rows: data.evidence.length, added };
}
