import os from 'node:os';
import type { Chain, Version } from '../chain/types.js';
import { LeapfrogError } from '../errors.js';
import type { Ledger, SnapshotRow } from '../ledger/ledger.js';
import { probeAll } from '../database/probe.js';
import type { TargetSession } from '../database/session.js';
import { fileSha256, restoreDatabase } from '../database/snapshot.js';
import { describeTarget } from '../database/url.js';

/**
 * Put the chain's databases back as a snapshot has them. Everything is
 * checked before anything is touched: the checkpoint belongs to this chain
 * and target, every database has a snapshot at or before it, every file is
 * there with the sha256 the ledger recorded. The rollback is recorded
 * `started` before the first restore, so a crash half-way leaves the truth
 * behind, and the steps it undid no longer count as done for the planner.
 */

export type RollbackPoint = number | 'start';

export interface RollbackResult {
  rollbackId: number;
  toCheckpoint: number;
  restored: SnapshotRow[];
  versions: Record<string, Record<string, Version>>;
}

export async function chooseSnapshots(chain: Chain, target: string, ledger: Ledger, to: RollbackPoint): Promise<SnapshotRow[]> {
  const listOf = () => {
    const cps = ledger.checkpointsOf(chain.name, target);
    return cps.length === 0 ? 'there are none for this chain and target' : `known: ${cps.slice(-12).map((c) => `${c.id} (${c.project}@${c.release})`).join(', ')}`;
  };
  let rows: SnapshotRow[];
  let what: string;
  if (to === 'start') {
    rows = ledger.firstSnapshots(chain.name, target);
    what = 'before the first hop';
  } else {
    const cp = ledger.checkpointWithRun(to);
    if (!cp || cp.chain !== chain.name || cp.target !== target) {
      throw new LeapfrogError('input', `--to ${to}: no checkpoint ${to} of chain ${chain.name} on ${target} in ${ledger.file}; ${listOf()} (\`leapfrog ledger show\` lists them)`);
    }
    rows = Object.values(chain.projects).flatMap((p) =>
      Object.values(p.databases).flatMap((d) => ledger.snapshotAt(chain.name, target, p.name, d, cp) ?? []),
    );
    what = `at or before checkpoint ${to}`;
  }
  const have = new Set(rows.map((r) => r.database));
  const missing = Object.values(chain.projects).flatMap((p) => Object.values(p.databases)).filter((d) => !have.has(d));
  if (missing.length > 0) {
    throw new LeapfrogError(
      'input',
      `cannot roll back ${what}: no snapshot of ${missing.join(', ')} was taken ${what} (were those runs made with --snapshot none?). Nothing was restored.`,
    );
  }
  const bad: string[] = [];
  for (const r of rows) {
    if (r.file === null) continue;
    let sum: string;
    try {
      sum = await fileSha256(r.file);
    } catch (err) {
      bad.push(`${r.file}: cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
      continue;
    }
    if (sum !== r.sha256) bad.push(`${r.file}: sha256 ${sum}, but the ledger recorded ${r.sha256} when it was taken`);
  }
  if (bad.length > 0) throw new LeapfrogError('refused', `the snapshot ${what} does not verify; nothing was restored`, { details: bad });
  return rows;
}

export async function rollback(chain: Chain, session: TargetSession, ledger: Ledger, to: RollbackPoint): Promise<RollbackResult> {
  const target = describeTarget(session.target);
  const rows = await chooseSnapshots(chain, target, ledger, to);
  const position = ledger.position();
  const rollbackId = ledger.rollbackStarted({
    chain: chain.name,
    target,
    toCheckpoint: to === 'start' ? 0 : to,
    snapshots: rows.map((r) => r.id),
    stepFloor: Math.min(...rows.map((r) => r.after_step)),
    stepCeiling: position.step,
    host: os.hostname(),
    pid: process.pid,
  });
  try {
    await session.release();
    for (const r of rows) await restoreDatabase(session.target, { database: r.database, file: r.file, sha256: r.sha256, bytes: r.bytes });
  } catch (err) {
    const e = err instanceof LeapfrogError ? err : new LeapfrogError('unexpected', (err as Error).message, { cause: err });
    ledger.rollbackFinished(rollbackId, 'failed', e.message);
    throw e;
  }
  ledger.rollbackFinished(rollbackId, 'succeeded');
  return { rollbackId, toCheckpoint: to === 'start' ? 0 : to, restored: rows, versions: await probeAll(session, chain) };
}
