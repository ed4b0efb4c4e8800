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
import { absentAt, resolvePoint, type PointResolution, type RestoreHistory } from './restore-points.js';
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
  /** The point's place in the ledger (its last step row; 0 for start): the steps after it are undone. */
  at: number;
  /** Databases no step changed since that point: not restored. */
  unchanged: string[];
  /** Databases that did not exist at that point: dropped. */
  drop: string[];
  /** What the rollback discards: the checkpoints recorded after that point and not already undone, oldest first. */
  lost: CheckpointRow[];
}

export interface RollbackResult extends RollbackChoice {
  /** Undefined for a dry run. */
  rollbackId: number | undefined;
  versions: Record<string, Record<string, Version>>;
}

/** The ledger's rows restore points are made of (restore-points.ts). */
export function restoreHistory(ledger: LedgerReader, chain: Chain, target: string): RestoreHistory {
  return { steps: ledger.stepsOf(chain.name, target), snapshots: ledger.snapshotsOf(chain.name, target), rollbacks: ledger.rollbacks(chain.name, target) };
}

/** A checkpoint's place in the ledger; undefined in ledgers from before snapshots. */
const placeOf = (cp: CheckpointRow | undefined): number | undefined => (cp === undefined ? 0 : (cp.after_step ?? undefined));

export interface RestorePoint {
  /** What `rollback --to` takes: a checkpoint's id, or start. */
  to: RollbackPoint;
  checkpoint: CheckpointRow | undefined;
  resolution: PointResolution;
}

/** `--to` as people read it: "12 (compute@mitaka, run 3)", or "start". */
export const describePoint = (p: Pick<RestorePoint, 'to' | 'checkpoint'>): string => (p.checkpoint ? `${p.checkpoint.id} (${p.checkpoint.project}@${p.checkpoint.release}, run ${p.checkpoint.run_id})` : 'start');

/** Every point `rollback --to` can restore exactly, oldest first, `start` first when it can. */
export function restorePoints(ledger: LedgerReader, chain: Chain, target: string): RestorePoint[] {
  const h = restoreHistory(ledger, chain, target);
  const out: RestorePoint[] = [];
  const start = resolvePoint(chain, h, 0, absentAt(chain, undefined));
  if (start.missing.length === 0 && start.restore.length + start.drop.length > 0) out.push({ to: 'start', checkpoint: undefined, resolution: start });
  for (const c of ledger.checkpointsOf(chain.name, target)) {
    if (c.after_step === null) continue;
    const r = resolvePoint(chain, h, c.after_step, absentAt(chain, c));
    if (r.missing.length === 0 && r.restore.length + r.drop.length > 0) out.push({ to: c.id, checkpoint: c, resolution: r });
  }
  return out;
}

/** The points `rollback --to` can restore exactly, newest checkpoints last, then `start`: "12 (compute@mitaka, run 3)". */
export function restorablePoints(ledger: LedgerReader, chain: Chain, target: string): string[] {
  const points = restorePoints(ledger, chain, target);
  return [...points.filter((p) => p.checkpoint).map(describePoint).slice(-12), ...points.filter((p) => !p.checkpoint).map(describePoint)];
}

export async function chooseSnapshots(chain: Chain, target: string, ledger: LedgerReader, to: RollbackPoint): Promise<RollbackChoice> {
  const checkpoints = ledger.checkpointsOf(chain.name, target);
  const restorable = () => {
    const all = restorablePoints(ledger, chain, target);
    return all.length === 0 ? 'no checkpoint of this chain and target has snapshots to restore' : `the points that can be restored exactly are: ${all.join(', ')}`;
  };
  let checkpoint: CheckpointRow | undefined;
  let what: string;
  if (to === 'start') what = 'before the first hop';
  else {
    checkpoint = checkpoints.find((c) => c.id === to);
    if (!checkpoint) throw new LeapfrogError('input', `--to ${to}: no checkpoint ${to} of chain ${chain.name} on ${target} in ${ledger.file}; ${restorable()} (\`${commandLine(['ledger', 'show', ...stateFlags(path.dirname(ledger.file))])}\` lists checkpoints)`);
    what = `to checkpoint ${to} (${checkpoint.project}@${checkpoint.release})`;
  }
  const at = placeOf(checkpoint);
  const resolution = at === undefined ? undefined : resolvePoint(chain, restoreHistory(ledger, chain, target), at, absentAt(chain, checkpoint));
  if (resolution && resolution.missing.length === 0 && resolution.restore.length + resolution.drop.length === 0) {
    throw new LeapfrogError('input', `nothing to roll back ${what}: no step changed the chain's databases since; ${restorable()}. Nothing was restored.`);
  }
  if (!resolution || resolution.missing.length > 0) {
    const missing = resolution ? resolution.missing : Object.values(chain.projects).flatMap((p) => Object.values(p.databases));
    const why =
      to === 'start'
        ? `no snapshot holds the state of ${missing.join(', ')} before the first hop (were those runs made with --snapshot none, or did a step change them before their first snapshot? --snapshot first-hop and every-hop snapshot every database before the first step)`
        : `no snapshot holds exactly the state of ${missing.join(', ')} at that checkpoint, and steps changed ${missing.length === 1 ? 'it' : 'them'} since (--snapshot hop-syncs, the default on MySQL/MariaDB, snapshots before each hop the databases its syncs declare; first-hop, the default on SQLite, only before a run's first step; every-hop every database of the project before each hop)`;
    throw new LeapfrogError('input', `cannot roll back ${what}: ${why}; ${restorable()}. Nothing was restored.`);
  }
  const rows = resolution.restore;
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
  return { to, checkpoint, at: at!, snapshots: rows, unchanged: resolution.unchanged, drop: resolution.drop, lost: lostAfter(ledger, chain, target, checkpoint) };
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
            // The steps recorded after the point are undone: every database is as it was there.
            stepFloor: choice.at,
            stepCeiling: position.step,
            host: os.hostname(),
            pid: process.pid,
          });
          try {
            // A restore is not interrupted half-way by a signal: a database half restored is worse than a late exit.
            for (const r of rows) await session.restore({ database: r.database, file: r.file, sha256: r.sha256, bytes: r.bytes });
            for (const d of choice.drop) await session.restore({ database: d, file: null, sha256: null, bytes: null });
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
