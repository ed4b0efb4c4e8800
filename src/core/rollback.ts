import os from 'node:os';
import path from 'node:path';
import { commandLine, stateFlags } from '../state-dir.js';
import type { Chain, Version } from '../chain/types.js';
import { withTargetLock } from '../database/lock.js';
import { probeAll } from '../database/probe.js';
import { withTarget } from '../database/session.js';
import { fileSha256 } from '../database/snapshot.js';
import { describePlacement } from '../database/placement.js';
import { LeapfrogError } from '../errors.js';
import { Ledger, withLedger, type CheckpointRow, type LedgerReader, type SnapshotRow } from '../ledger/ledger.js';
import type { CoreContext } from './context.js';
import { offlineGuard } from './guard.js';
import { withStopSignals } from './signals.js';

/**
 * `rollback`: put the chain's databases back exactly as they were at a
 * checkpoint (or before the first hop), from snapshots the ledger recorded.
 * Everything is checked before anything is touched: the checkpoint belongs
 * to this chain and target, every database has a snapshot of exactly that
 * state, every file has the sha256 the ledger recorded. The rollback is
 * recorded `started` before the first restore, so a crash half-way leaves
 * the truth behind, and the steps it undid no longer count as done.
 */

export type RollbackPoint = number | 'start';

export interface RollbackChoice {
  to: RollbackPoint;
  checkpoint: CheckpointRow | undefined;
  snapshots: SnapshotRow[];
  /** What the rollback discards: the checkpoints recorded after that point and not already undone, oldest first. */
  lost: CheckpointRow[];
}

export interface RollbackResult extends RollbackChoice {
  /** Undefined for a dry run. */
  rollbackId: number | undefined;
  versions: Record<string, Record<string, Version>>;
}

const allDatabases = (chain: Chain) => Object.values(chain.projects).flatMap((p) => Object.values(p.databases).map((d) => ({ project: p.name, database: d })));

/** Per database, the snapshot holding exactly its state at `cp`, or the databases that have none. */
function exactAt(ledger: LedgerReader, chain: Chain, target: string, cp: CheckpointRow): { rows: SnapshotRow[]; missing: string[] } {
  const rows: SnapshotRow[] = [];
  const missing: string[] = [];
  for (const { project, database } of allDatabases(chain)) {
    const s = ledger.exactSnapshot(chain.name, target, project, database, cp);
    if (s) rows.push(s);
    else missing.push(database);
  }
  return { rows, missing };
}

/** The points `rollback --to` can restore exactly, newest checkpoints last, then `start`: "12 (compute@mitaka, run 3)". */
export function restorablePoints(ledger: LedgerReader, chain: Chain, target: string): string[] {
  const exact = ledger
    .checkpointsOf(chain.name, target)
    .filter((c) => exactAt(ledger, chain, target, c).missing.length === 0)
    .map((c) => `${c.id} (${c.project}@${c.release}, run ${c.run_id})`);
  const start = ledger.firstSnapshots(chain.name, target).length > 0 ? ['start'] : [];
  return [...exact.slice(-12), ...start];
}

export async function chooseSnapshots(chain: Chain, target: string, ledger: LedgerReader, to: RollbackPoint): Promise<RollbackChoice> {
  const checkpoints = ledger.checkpointsOf(chain.name, target);
  const restorable = () => {
    const all = restorablePoints(ledger, chain, target);
    return all.length === 0 ? 'no checkpoint of this chain and target has snapshots to restore' : `the points that can be restored exactly are: ${all.join(', ')}`;
  };
  let rows: SnapshotRow[];
  let what: string;
  let checkpoint: CheckpointRow | undefined;
  if (to === 'start') {
    rows = ledger.firstSnapshots(chain.name, target);
    what = 'before the first hop';
    const have = new Set(rows.map((r) => r.database));
    const missing = allDatabases(chain).map((d) => d.database).filter((d) => !have.has(d));
    if (missing.length > 0) throw new LeapfrogError('input', `cannot roll back ${what}: no snapshot of ${missing.join(', ')} was taken before the first hop (were those runs made with --snapshot none?). Nothing was restored.`);
  } else {
    checkpoint = checkpoints.find((c) => c.id === to);
    if (!checkpoint) throw new LeapfrogError('input', `--to ${to}: no checkpoint ${to} of chain ${chain.name} on ${target} in ${ledger.file}; ${restorable()} (\`${commandLine(['ledger', 'show', ...stateFlags(path.dirname(ledger.file))])}\` lists checkpoints)`);
    what = `to checkpoint ${to} (${checkpoint.project}@${checkpoint.release})`;
    const exact = exactAt(ledger, chain, target, checkpoint);
    if (exact.missing.length > 0) {
      throw new LeapfrogError(
        'input',
        `cannot roll back ${what}: no snapshot holds exactly the state of ${exact.missing.join(', ')} at that checkpoint (with the default --snapshot first-hop, snapshots are taken only before a run's first step; --snapshot every-hop takes one before every hop); ${restorable()}. Nothing was restored.`,
      );
    }
    rows = exact.rows;
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
  return { to, checkpoint, snapshots: rows, lost: lostAfter(ledger, chain, target, checkpoint) };
}

/** The checkpoints after `cp` (all of them for start) that no earlier rollback undid: the hops the restore takes back. */
function lostAfter(ledger: LedgerReader, chain: Chain, target: string, cp: CheckpointRow | undefined): CheckpointRow[] {
  const undone = ledger.rollbacks(chain.name, target);
  return ledger
    .checkpointsOf(chain.name, target)
    .filter((c) => cp === undefined || c.id > cp.id)
    .filter((c) => c.after_step === null || !undone.some((b) => c.after_step! > b.step_floor && c.after_step! <= b.step_ceiling));
}

export interface RollbackOptions {
  to: RollbackPoint;
  dryRun: boolean;
  waitLockSeconds: number;
  force: boolean;
  /**
   * Asked with the verified choice, under the lock, before anything is
   * recorded or restored: false (or a throw) leaves target and ledger as they
   * were. Absent: no question (--yes).
   */
  confirm?: ((preview: RollbackChoice) => Promise<boolean>) | undefined;
}

export async function rollback(ctx: CoreContext, o: RollbackOptions, warn: (text: string) => void): Promise<RollbackResult> {
  const { chain, target, layout } = ctx;
  const shown = describePlacement(target);
  if (o.dryRun) {
    // Changes nothing: no lock, no ledger created.
    const ledger = Ledger.openForReading(layout.stateDir);
    if (!ledger) throw new LeapfrogError('input', `no ledger in ${layout.stateDir}: nothing was ever snapshotted from this state directory`);
    try {
      const choice = await chooseSnapshots(chain, shown, ledger, o.to);
      return { ...choice, rollbackId: undefined, versions: await withTarget(target, (s) => probeAll(s, chain)) };
    } finally {
      ledger.close();
    }
  }
  return withStopSignals(warn, () =>
    withLedger(layout.stateDir, (ledger) =>
      withTarget(target, (session) =>
        withTargetLock(session, chain, layout.stateDir, { waitSeconds: o.waitLockSeconds, command: 'rollback' }, async () => {
          await offlineGuard(session, chain, o.force, warn);
          const choice = await chooseSnapshots(chain, shown, ledger, o.to);
          if (o.confirm && !(await o.confirm(choice))) throw new LeapfrogError('input', 'rollback not confirmed; nothing was changed');
          const position = ledger.position();
          const rows = choice.snapshots;
          const rollbackId = ledger.rollbackStarted({
            chain: chain.name,
            target: shown,
            toCheckpoint: o.to === 'start' ? 0 : o.to,
            snapshots: rows.map((r) => r.id),
            stepFloor: Math.min(...rows.map((r) => r.after_step)),
            stepCeiling: position.step,
            host: os.hostname(),
            pid: process.pid,
          });
          try {
            // A restore is not interrupted half-way by a signal: a database half restored is worse than a late exit.
            for (const r of rows) await session.restore({ database: r.database, file: r.file, sha256: r.sha256, bytes: r.bytes });
          } catch (err) {
            const e = err instanceof LeapfrogError ? err : new LeapfrogError('unexpected', (err as Error).message, { cause: err });
            ledger.rollbackFinished(rollbackId, 'failed', e.message);
            throw e;
          }
          ledger.rollbackFinished(rollbackId, 'succeeded');
          return { ...choice, rollbackId, versions: await probeAll(session, chain) };
        }),
      ),
    ),
  );
}
