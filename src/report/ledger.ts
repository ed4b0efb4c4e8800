import type { CheckpointRow, RollbackRow, RunRow, SnapshotRow, StepRow } from '../ledger/ledger.js';
import { checkpointFingerprints, checkpointVersions, rollbackSnapshots, stepCommand } from '../ledger/records.js';
import { shellQuote } from './format.js';
import { stripAnsi } from './tail.js';
import path from 'node:path';
import type { RehearsalRuns } from '../ledger/rehearsals.js';
import { formatMs, formatStoredVersion, formatTime, table } from './render.js';

/** The ledger for people and as JSON: the list of runs, and one run in full. */

/** A run as listed: its row, the ledger that holds it, and the rehearsal it belongs to (null: the main ledger). */
export interface ListedRun {
  run: RunRow;
  ledger: string;
  rehearsal: string | null;
}

/** The main ledger's runs and the rehearsals' (each in a ledger of its own), newest first, at most `limit`. */
export function listRuns(file: string, runs: readonly RunRow[], rehearsals: readonly RehearsalRuns[], limit = 50): ListedRun[] {
  return [...runs.map((run) => ({ run, ledger: file, rehearsal: null })), ...rehearsals.flatMap((h) => h.runs.map((run) => ({ run, ledger: h.ledger, rehearsal: h.id })))]
    .sort((a, b) => Date.parse(b.run.started_at) - Date.parse(a.run.started_at))
    .slice(0, limit);
}

const durationMs = (r: RunRow) => (r.finished_at ? Date.parse(r.finished_at) - Date.parse(r.started_at) : null);

export function runsJson(file: string, runs: readonly ListedRun[]) {
  return { format: 'leapfrog.ledger.runs/v1', ledger: file, runs: runs.map((x) => ({ ...x.run, duration_ms: durationMs(x.run), ledger: x.ledger, rehearsal: x.rehearsal })) };
}

/** `show(run, dir)`: the command that shows one run of the ledger in `dir`. */
export function runsText(file: string, runs: readonly ListedRun[], show: (run: number, dir: string) => string): string {
  if (runs.length === 0) return `No runs recorded in ${file}.`;
  const t = table(['run', 'kind', 'chain', 'target', 'status', 'started', 'finished', 'duration']);
  for (const { run: r, rehearsal } of runs) {
    const ms = durationMs(r);
    t.push([rehearsal ? `${rehearsal}/${r.id}` : String(r.id), r.kind, r.chain, r.target, r.status, formatTime(r.started_at), r.finished_at ? formatTime(r.finished_at) : '-', ms === null ? '-' : formatMs(ms)]);
  }
  const out = [t.toString()];
  const one = runs.find((x) => x.rehearsal !== null);
  if (one) out.push(`A rehearsal's runs (ID/RUN) are in its own ledger: \`${show(one.run.id, path.dirname(one.ledger))}\` shows run ${one.rehearsal}/${one.run.id}.`);
  return out.join('\n');
}

export interface RunRecord {
  run: RunRow;
  steps: StepRow[];
  checkpoints: CheckpointRow[];
  snapshots: SnapshotRow[];
  rollbacks: RollbackRow[];
}

export function runJson(r: RunRecord) {
  return {
    format: 'leapfrog.ledger.run/v1',
    run: r.run,
    steps: r.steps.map((s) => ({ ...s, command: stepCommand(s) })),
    checkpoints: r.checkpoints.map((c) => ({ ...c, versions: checkpointVersions(c), fingerprints: checkpointFingerprints(c) })),
    snapshots: r.snapshots,
    rollbacks: r.rollbacks.map((b) => ({ ...b, snapshots: rollbackSnapshots(b) })),
  };
}

export function runText({ run, steps, checkpoints, snapshots, rollbacks }: RunRecord): string {
  const lines = [`Run ${run.id}: chain ${run.chain} on ${run.target}, ${run.status}, started ${run.started_at} on ${run.host} (pid ${run.pid})`];
  if (run.error) lines.push(`Error: ${run.error}`);
  for (const n of run.notes?.split('\n') ?? []) lines.push(`Note: ${n}`);
  const t = table(['step', 'kind', 'env', 'status', 'runs', 'exit', 'time']);
  for (const s of steps) t.push([s.step_id, s.kind, s.env, s.status, String(s.attempts), s.exit_code === null ? '-' : String(s.exit_code), s.duration_ms === null ? '-' : formatMs(s.duration_ms)]);
  lines.push(t.toString());
  for (const s of steps.filter((x) => x.status === 'failed' || x.status === 'interrupted' || x.status === 'started')) {
    // The command shell-quoted (paste it to run the step by hand); the tail without ANSI codes, also from older ledgers.
    lines.push(`\n${s.step_id} ${s.status}${s.error ? `: ${s.error}` : ''}`, `$ ${shellQuote(stepCommand(s))}`, `log: ${s.log_path}`, ...(s.log_tail ? stripAnsi(s.log_tail).split('\n').map((l) => '  ' + l) : []));
  }
  if (checkpoints.length > 0) {
    const c = table(['id', 'checkpoint', 'versions', 'fingerprints']);
    for (const cp of checkpoints) {
      const fp = checkpointFingerprints(cp);
      c.push([
        String(cp.id),
        `${cp.project}@${cp.release}`,
        Object.entries(checkpointVersions(cp)).map(([db, v]) => `${db} ${formatStoredVersion(v)}`).join('\n'),
        Object.entries(fp).map(([db, h]) => `${db} ${h ? h.slice(0, 12) : '-'}`).join('\n'),
      ]);
    }
    lines.push('', c.toString());
  }
  if (snapshots.length > 0) {
    const sn = table(['snapshot', 'before step', 'database', 'size', 'sha256']);
    for (const x of snapshots) sn.push([String(x.id), x.before_step, x.database, x.file === null ? 'absent' : `${Math.ceil((x.bytes ?? 0) / 1024)} KiB`, x.sha256 ? x.sha256.slice(0, 12) : '-']);
    lines.push('', sn.toString());
  } else {
    lines.push('', `No snapshots in this run${run.snapshot === 'none' ? ' (--snapshot none)' : ''}.`);
  }
  for (const b of rollbacks) {
    lines.push(`Rollback ${b.id} ${b.to_checkpoint === 0 ? 'to before the first hop' : `to checkpoint ${b.to_checkpoint}`}: ${b.status}, ${b.started_at} on ${b.host}${b.error ? `: ${b.error}` : ''}`);
  }
  return lines.join('\n');
}
