import { randomUUID } from 'node:crypto';
import type { PreparedStep } from '../chain/argv.js';
import { versionToJson } from '../chain/version.js';
import { fingerprint } from '../database/fingerprint.js';
import { probeVersion } from '../database/probe.js';
import type { Phase } from '../ledger/evidence.js';
import type { RunContext } from './context.js';

/**
 * Recording a sync step's evidence (ledger/evidence.ts): the version and
 * schema of each database the step declares (its `expect`), before its
 * child starts and after it succeeded. A crash later is judged against it.
 */

export interface EvidenceWriter {
  record(phase: Phase): Promise<void>;
}

export function evidenceWriter(ctx: RunContext, p: PreparedStep, stepRow: number, envSha256: string): EvidenceWriter {
  const attempt = randomUUID();
  const { step } = p;
  const project = ctx.chain.projects[step.project]!;
  const declared = step.kind === 'sync' ? Object.keys(step.expect) : [];
  return {
    async record(phase) {
      const rows = [];
      for (const db of declared) {
        const name = project.databases[db]!;
        const version = await probeVersion(ctx.session, name, project.version[db]!);
        const f = await fingerprint(ctx.session, name);
        rows.push({
          attempt,
          source: 'local',
          chain: ctx.chain.name,
          chain_sha256: ctx.chain.sha256,
          step_id: step.id,
          step_row: stepRow,
          run_kind: ctx.kind ?? 'run',
          env_sha256: envSha256,
          database: db,
          phase,
          version: JSON.stringify(versionToJson(version)),
          sha256: f?.sha256 ?? null,
          shape: f ? JSON.stringify(f.shape) : null,
        });
      }
      if (rows.length > 0) ctx.ledger.evidence.add(rows);
    },
  };
}
