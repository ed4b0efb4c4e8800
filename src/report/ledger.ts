import type { CheckpointRow, RollbackRow, RunRow, SnapshotRow, StepRow } from '../ledger/ledger.js';
import { checkpointFingerprints, checkpointVersions, rollbackSnapshots, stepCommand } from '../ledger/records.js';
import { formatMs, formatStoredVersion, table } from './render.js';

/** The ledger for people and as JSON: the list of runs, and one run in full. */

export function runsJson(file: string, runs: readonly RunRow[]) {
  return { format: 'leapfrog.ledger.runs/v1', ledger: file, runs };
}

export function runsText(file: string, runs: readonly RunRow[]): string {
  if (runs.length === 0) return `No runs recorded in ${file}.`;
  const t = table(['run', 'chain', 'target', 'status', 'started', 'duration']);
  for (const r of runs) {
    const ms = r.finished_at ? Date.parse(r.finished_at) - Date.parse(r.started_at) : undefined;
    t.push([String(r.id), r.chain, r.target, r.status, r.started_at.replace('T', ' ').slice(0, 19), ms === undefined ? '-' : formatMs(ms)]);
  }
  return t.toString();
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
    lines.push(`\n${s.step_id} ${s.status}${s.error ? `: ${s.error}` : ''}`, `log: ${s.log_path}`, ...(s.log_tail ? s.log_tail.split('\n').map((l) => '  ' + l) : []));
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
