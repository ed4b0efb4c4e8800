import type { PlannedStep } from '../chain/plan.js';
import type { Chain } from '../chain/types.js';
import { formatBytes } from '../report/format.js';
import { formatMs } from '../report/render.js';
import { resolveSnapshotMode, snapshotPlan, type SnapshotMode } from '../runner/snapshot-plan.js';
import type { CheckFacts, CheckRow } from './facts.js';

/**
 * What the run's restore points will cost, before the window: the
 * snapshots `run` will take with this --snapshot (the same
 * snapshot-plan.ts), each priced in bytes read (the databases' sizes now:
 * information_schema's data and index lengths, or the SQLite files) and in
 * time (each database's newest snapshot on this target, from the ledger;
 * a snapshot's databases are dumped in parallel, so its slowest one). The
 * cheaper modes are priced too, with what they give up, so trading the
 * restore points away is a decision and not a default.
 */

export interface PricedSnapshot {
  beforeStep: string;
  databases: string[];
  bytes: number;
  /** undefined: no earlier snapshot of one of its databases on this target. */
  ms: number | undefined;
}

export interface SnapshotCost {
  mode: SnapshotMode;
  snapshots: PricedSnapshot[];
  bytes: number;
  /** undefined when some snapshot's time is unknown; knownMs sums the known ones. */
  ms: number | undefined;
  knownMs: number;
}

type Facts = Pick<CheckFacts, 'mysql' | 'sqlite' | 'storage' | 'snapshot' | 'ledger'>;

function databaseBytes(f: Facts, name: string): number {
  if (f.sqlite) return f.sqlite.files.find((x) => x.name === name)?.bytes ?? 0;
  return (f.mysql?.tables ?? []).filter((t) => t.schema === name).reduce((n, t) => n + t.bytes, 0);
}

export function priceSnapshots(chain: Chain, steps: readonly PlannedStep[], mode: SnapshotMode, f: Facts): SnapshotCost {
  // Newest first in the facts: the first duration seen of a database is its newest.
  const lastMs = new Map<string, number>();
  for (const s of f.ledger.snapshots) if (!lastMs.has(s.database)) lastMs.set(s.database, s.durationMs);
  const snapshots = snapshotPlan(chain, steps, mode).map((s) => {
    const times = s.databases.map((d) => lastMs.get(d));
    return {
      beforeStep: s.beforeStep,
      databases: s.databases,
      bytes: s.databases.reduce((n, d) => n + databaseBytes(f, d), 0),
      ms: times.every((t) => t !== undefined) ? Math.max(0, ...(times as number[])) : undefined,
    };
  });
  const knownMs = snapshots.reduce((n, s) => n + (s.ms ?? 0), 0);
  return { mode, snapshots, bytes: snapshots.reduce((n, s) => n + s.bytes, 0), ms: snapshots.every((s) => s.ms !== undefined) ? knownMs : undefined, knownMs };
}

const costText = (c: SnapshotCost) =>
  c.snapshots.length === 0
    ? 'no snapshot'
    : `${c.snapshots.length} snapshot${c.snapshots.length === 1 ? '' : 's'}, ${formatBytes(c.bytes)} read, ${c.ms !== undefined ? `about ${formatMs(c.ms)}` : c.knownMs > 0 ? `over ${formatMs(c.knownMs)} (some databases never snapshotted here)` : 'time unknown (no earlier snapshot here)'}`;

const GIVES: Record<SnapshotMode, string> = {
  'hop-syncs': 'a restore point before every hop for the databases its syncs change',
  'first-hop': 'one restore point before the first step; a sync that dies half-way in a later hop can only be undone to there',
  'every-hop': 'every database of a project before each of its hops',
  none: 'no restore point: a sync that dies half-way can only be undone from your own backup',
};

export function snapshotCheck(chain: Chain, steps: readonly PlannedStep[], f: Facts): CheckRow {
  const name = 'Snapshots';
  const transactionalDdl = f.sqlite !== undefined;
  const mode = resolveSnapshotMode(f.snapshot, transactionalDdl);
  const cost = priceSnapshots(chain, steps, mode, f);
  const others = (['hop-syncs', 'first-hop', 'every-hop', 'none'] as const).filter((m) => m !== mode).map((m) => priceSnapshots(chain, steps, m, f));
  const lines = [
    `--snapshot ${f.snapshot === 'auto' ? `auto (${mode}: ${transactionalDdl ? 'SQLite\'s DDL is transactional' : 'MySQL/MariaDB commit each DDL statement on its own'})` : mode}: ${costText(cost)}; ${GIVES[mode]}.`,
    ...cost.snapshots.map((s) => `  before ${s.beforeStep}: ${s.databases.map((d) => `${d} ${formatBytes(databaseBytes(f, d))}`).join(', ')}${s.ms !== undefined ? `, about ${formatMs(s.ms)}` : ''}`),
    `Time is each database's newest snapshot on this target (the ledger); bytes are the databases' ${f.sqlite ? 'files' : 'data and indexes'} now (compressed on disk). Instead:`,
    ...others.map((o) => `  --snapshot ${o.mode}: ${costText(o)}; ${GIVES[o.mode]}`),
  ];
  const data = { requested: f.snapshot, ...cost, alternatives: others };
  const free = f.storage.freeBytes;
  if (free !== undefined && free < cost.bytes) return { check: name, result: 'Warning', details: [`The snapshots need up to ${formatBytes(cost.bytes)} in the state directory and ${formatBytes(free)} are free: free space, use another --state-dir, or a cheaper --snapshot.`, ...lines].join('\n'), data };
  // A sync in a project's later hop (any sync, with none) has no restore point from just before its hop.
  const firstRelease = new Map<string, string>();
  for (const s of steps) if (!firstRelease.has(s.step.project)) firstRelease.set(s.step.project, s.step.release);
  const uncovered = steps.some((s) => s.step.kind === 'sync' && (mode === 'none' || firstRelease.get(s.step.project) !== s.step.release));
  const tradedAway = !transactionalDdl && (mode === 'first-hop' || mode === 'none') && uncovered;
  return { check: name, result: tradedAway ? 'Warning' : 'Success', details: lines.join('\n'), data };
}
