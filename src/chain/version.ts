import type { Expectation, Version, VersionProbe } from './types.js';

/**
 * Versions and expectations: parsing from chain files, comparing, printing.
 * Pure functions; the planner and the runner both lean on them.
 */

/** Parse a version as written in a chain file (start:, expect:). Returns an error text or the expectation. */
export function parseExpectation(probe: VersionProbe, raw: unknown): Expectation | string {
  switch (probe.kind) {
    case 'sqlalchemy-migrate':
      if (probe.repositories === undefined) {
        return Number.isInteger(raw) && (raw as number) >= 0
          ? { kind: 'number', value: raw as number }
          : 'must be a whole number (a sqlalchemy-migrate version)';
      }
      if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
        return `must map repositories to versions, e.g. { ${probe.repositories[0]}: 67 }`;
      }
      for (const [repo, v] of Object.entries(raw)) {
        if (!probe.repositories.includes(repo)) return `names repository "${repo}", which is not one of ${probe.repositories.join(', ')}`;
        if (!Number.isInteger(v) || (v as number) < 0) return `repository "${repo}": must be a whole number`;
      }
      return { kind: 'repos', repos: raw as Record<string, number> };
    case 'alembic-else-sqlalchemy-migrate': {
      // A number (or per-repository numbers) is a sqlalchemy-migrate version, from before the handover; anything else a revision.
      if (typeof raw === 'number' || (raw !== null && typeof raw === 'object' && !Array.isArray(raw))) {
        const migrate = parseExpectation({ kind: 'sqlalchemy-migrate', repositories: probe.repositories }, raw);
        return typeof migrate === 'string' ? `${migrate}, or an alembic revision` : migrate;
      }
      const alembic = parseExpectation({ kind: 'alembic' }, raw);
      return typeof alembic === 'string' ? 'must be an alembic revision or a list of heads (after the handover), or a sqlalchemy-migrate version (before it)' : alembic;
    }
    case 'alembic':
      if (typeof raw === 'string' && raw !== '') return { kind: 'heads', heads: [raw] };
      if (Array.isArray(raw) && raw.length > 0 && raw.every((h) => typeof h === 'string' && h !== '')) {
        return { kind: 'heads', heads: [...(raw as string[])].sort() };
      }
      return 'must be an alembic revision, or a list of heads';
    case 'sql':
      if (probe.numeric) {
        return typeof raw === 'number' && Number.isFinite(raw) ? { kind: 'number', value: raw } : 'must be a number (the probe is numeric)';
      }
      return typeof raw === 'string' || typeof raw === 'number' ? { kind: 'text', value: String(raw) } : 'must be a string';
  }
}

export function formatVersion(v: Version | Expectation): string {
  switch (v.kind) {
    case 'absent':
      return '(absent)';
    case 'partial':
      return `(partly created: ${v.tables.length} table${v.tables.length === 1 ? '' : 's'}, no version)`;
    case 'number':
      return String(v.value);
    case 'text':
      return v.value;
    case 'heads':
      return v.heads.length === 0 ? '(no heads)' : v.heads.join(',');
    case 'repos': {
      // Repositories not created yet are left out: "keystone=97", not "keystone=97 keystone_expand=-".
      const present = Object.entries(v.repos).filter(([, n]) => n !== null);
      return present.length === 0 ? '(absent)' : present.map(([r, n]) => `${r}=${n}`).join(' ');
    }
  }
}

/** Plain JSON for --format json and the ledger. */
export function versionToJson(v: Version | Expectation): unknown {
  switch (v.kind) {
    case 'absent':
      return null;
    case 'partial':
      return { partial: [...v.tables] };
    case 'number':
      return v.value;
    case 'text':
      return v.value;
    case 'heads':
      return v.heads.length === 1 ? v.heads[0] : [...v.heads];
    case 'repos':
      return { ...v.repos };
  }
}

/**
 * Where a version stands relative to an expectation, on the line of versions
 * the chain walks. `order` lists the chain's non-numeric versions (alembic
 * heads, text) in chain order, so they can be compared by position.
 */
export type Standing = 'below' | 'equal' | 'above' | 'unknown';

/**
 * A sqlalchemy-migrate version comes before every alembic revision: where a
 * probe reads both (alembic-else-sqlalchemy-migrate), the database moved
 * from one to the other once, at the handover.
 */
const MIGRATE = new Set(['number', 'repos']);

export function compareToExpectation(v: Version, e: Expectation, order: readonly string[]): Standing {
  if (v.kind === 'absent') return 'below';
  if (v.kind === 'partial') return 'unknown';
  if (MIGRATE.has(v.kind) && e.kind === 'heads') return 'below';
  if (v.kind === 'heads' && MIGRATE.has(e.kind)) return 'above';
  switch (e.kind) {
    case 'number':
      if (v.kind !== 'number') return 'unknown';
      return v.value < e.value ? 'below' : v.value === e.value ? 'equal' : 'above';
    case 'repos': {
      if (v.kind !== 'repos') return 'unknown';
      let below = false;
      let above = false;
      for (const [repo, want] of Object.entries(e.repos)) {
        const have = v.repos[repo] ?? null;
        if (have === null || have < want) below = true;
        else if (have > want) above = true;
      }
      return below ? 'below' : above ? 'above' : 'equal';
    }
    case 'heads':
    case 'text': {
      const have = v.kind === 'heads' ? v.heads.join(',') : v.kind === 'text' ? v.value : undefined;
      if (have === undefined) return 'unknown';
      const want = e.kind === 'heads' ? e.heads.join(',') : e.value;
      if (have === want) return 'equal';
      const hi = order.indexOf(have);
      const wi = order.indexOf(want);
      if (hi < 0 || wi < 0) return 'unknown';
      return hi < wi ? 'below' : 'above';
    }
  }
}

export function isReached(v: Version, e: Expectation, order: readonly string[]): boolean {
  const s = compareToExpectation(v, e, order);
  return s === 'equal' || s === 'above';
}

/** The canonical key of a non-numeric expectation, as used in `order`. */
export function orderKey(e: Expectation): string | undefined {
  if (e.kind === 'heads') return e.heads.join(',');
  if (e.kind === 'text') return e.value;
  return undefined;
}
