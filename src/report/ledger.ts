import type { CheckpointRow, PredictionRow, RollbackRow, RunRow, SnapshotRow, StepRow } from '../ledger/ledger.js';
import type { StepPrediction } from '../check/predict.js';
import { modelJson, modelText } from './prediction.js';
import { checkpointFingerprints, checkpointVersions, rollbackSnapshots, stepCommand, stepRowCounts } from '../ledger/records.js';
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
  /** What the run was predicted to take per hop before it started (absent in ledgers from before schema 6). */
  predictions?: PredictionRow[];
}

/** Per hop the run predicted: the prediction beside the hop's measured time (its steps' times in this run). */
export function predictedVsActual(r: Pick<RunRecord, 'steps' | 'predictions'>) {
  return (r.predictions ?? []).map((p) => {
    const steps = r.steps.filter((s) => s.project === p.project && s.release === p.release && s.duration_ms !== null);
    const actualMs = steps.length === 0 ? null : steps.reduce((n, s) => n + s.duration_ms!, 0);
    return {
      project: p.project,
      release: p.release,
      predictedMs: p.ms,
      actualMs,
      /** (actual − predicted) / predicted: +0.25 took a quarter longer than predicted. */
      error: p.ms === null || actualMs === null || p.ms === 0 ? null : (actualMs - p.ms) / p.ms,
      source: p.source,
      model: JSON.parse(p.model) as StepPrediction[],
    };
  });
}

export function runJson(r: RunRecord) {
  return {
    format: 'leapfrog.ledger.run/v1',
    run: r.run,
    steps: r.steps.map((s) => ({ ...s, command: stepCommand(s), row_counts: stepRowCounts(s) })),
    checkpoints: r.checkpoints.map((c) => ({ ...c, versions: checkpointVersions(c), fingerprints: checkpointFingerprints(c) })),
    snapshots: r.snapshots,
    rollbacks: r.rollbacks.map((b) => ({ ...b, snapshots: rollbackSnapshots(b) })),
    predictions: predictedVsActual(r).map((p) => ({ ...p, model: p.model.map(modelJson) })),
  };
}

/** The rows a step touched as it started: per table, or its needed-when count. */
function rowsText(s: StepRow): string {
  const counts = stepRowCounts(s);
  if (!counts) return '-';
  const parts = Object.entries(counts).map(([k, v]) => (k === 'needed-when' ? `${v} (needed-when)` : `${k} ${v}`));
  return parts.join('\n');
}

const signed = (x: number) => `${x >= 0 ? '+' : '−'}${Math.abs(x * 100).toFixed(0)} %`;

/** The prediction table: per hop, predicted and actual, and the scaled steps' inputs beneath. */
function predictionLines(r: RunRecord): string[] {
  const rows = predictedVsActual(r);
  if (rows.length === 0) return [];
  const t = table(['hop', 'predicted', 'actual', 'off by', 'from']);
  for (const p of rows) {
    t.push([`${p.project}@${p.release}`, p.predictedMs === null ? 'unknown' : formatMs(p.predictedMs), p.actualMs === null ? '-' : formatMs(p.actualMs), p.error === null ? '-' : signed(p.error), p.source ?? '-']);
  }
  const known = rows.filter((p) => p.predictedMs !== null && p.actualMs !== null);
  const predicted = known.reduce((n, p) => n + p.predictedMs!, 0);
  const actual = known.reduce((n, p) => n + p.actualMs!, 0);
  const out = ['', 'Predicted before the run (check-migrations\' estimate) and measured:', t.toString()];
  if (known.length > 0) out.push(`Total over ${known.length} hop${known.length === 1 ? '' : 's'}: predicted ${formatMs(predicted)}, took ${formatMs(actual)}${predicted > 0 ? ` (${signed((actual - predicted) / predicted)})` : ''}.`);
  const models = rows.flatMap((p) => p.model.flatMap((m) => modelText(m) ?? []));
  if (models.length > 0) out.push('Scaled by rows (time = fixed + per row × rows):', ...models.map((m) => `  ${m}`));
  return out;
}

export function runText(record: RunRecord): string {
  const { run, steps, checkpoints, snapshots, rollbacks } = record;
  const lines = [`Run ${run.id}: chain ${run.chain} on ${run.target}, ${run.status}, started ${run.started_at} on ${run.host} (pid ${run.pid})`];
  if (run.error) lines.push(`Error: ${run.error}`);
  for (const n of run.notes?.split('\n') ?? []) lines.push(`Note: ${n}`);
  const t = table(['step', 'kind', 'env', 'status', 'runs', 'exit', 'time', 'rows']);
  for (const s of steps) t.push([s.step_id, s.kind, s.env, s.status, String(s.attempts), s.exit_code === null ? '-' : String(s.exit_code), s.duration_ms === null ? '-' : formatMs(s.duration_ms), rowsText(s)]);
  lines.push(t.toString());
  lines.push(...predictionLines(record));
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
