import cliProgress from 'cli-progress';
import { formatBytes, shellQuote } from './format.js';
import { frame } from './progress-frame.js';
import { apply, clock, initialState, runLeftMs, stepLeftMs, type ProgressEvent, type ProgressState } from './progress-model.js';
import { formatMs, versionsLine } from './render.js';
import { screen } from './screen.js';

/**
 * Two renderers of run events: on a terminal, a picture of every project
 * redrawn whole (progress-frame.ts on screen.ts); otherwise plain
 * timestamped lines (CI logs, pipes, `tee`): one when a step starts and one
 * when it ends, and at most one per data step every few seconds while it
 * repeats. Both fold the events into one model (progress-model.ts) for
 * their times.
 */
export interface Renderer {
  on(e: ProgressEvent): void;
  /** A line for the operator (a note, a warning, a signal): above the picture on a terminal. */
  log(text: string): void;
  stop(): void;
}

/** A data step's batches in a pipe: a line at most this often (a rehearsal once printed 1,239 of them). */
export const BATCH_LINE_MS = 5000;

function snapshotLine(dbs: readonly { database: string; file: string | null; bytes: number | null }[]): string {
  return dbs.map((d) => (d.file === null ? `${d.database} (absent)` : `${d.database} ${((d.bytes ?? 0) / 1024).toFixed(0)} KiB`)).join(', ');
}

function runTimes(s: ProgressState, now: number): string {
  const left = runLeftMs(s, now);
  return `run ${clock(now - s.startedAt)} elapsed, ETA ${left === undefined ? '?' : clock(left)}`;
}

export function lineRenderer(write: (line: string) => void, clockNow: () => number = Date.now): Renderer {
  const stamp = () => new Date().toISOString().slice(11, 19);
  const state = initialState(clockNow());
  const lastBatchLine = new Map<string, number>();
  return {
    on(e) {
      const now = clockNow();
      apply(state, e, now);
      switch (e.type) {
        case 'env':
          // A cached env is the normal case in a window; only new unpacking is news.
          if (!e.cached) write(`${stamp()} env ${e.env}: unpacked into ${e.root}`);
          break;
        case 'env-progress':
          // One line when a download starts; the bytes themselves are for bars.
          if (e.bytes === 0) write(`${stamp()} env ${e.env}: downloading${e.total !== undefined ? ` ${formatBytes(e.total)}` : ''}`);
          break;
        case 'run-start':
          write(`${stamp()} run ${e.runId}: ${e.plan.steps.length} steps over ${e.plan.hops.length} hops; logs in ${e.runDir}/logs; ${state.estimateFrom ? `estimate from ${state.estimateFrom}` : 'no earlier run of this chain to estimate from'}`);
          break;
        case 'step-start': {
          lastBatchLine.set(e.step.step.id, now);
          const est = state.projects.get(e.step.step.project)?.steps.find((x) => x.id === e.step.step.id)?.estimateMs;
          write(`${stamp()} ${e.step.step.id} ${e.step.step.kind} [${e.step.step.env}]${est !== undefined ? ` (took ${clock(est)} before)` : ''}: ${shellQuote(e.argv)}`);
          break;
        }
        case 'step-batch': {
          if (now - (lastBatchLine.get(e.step.step.id) ?? 0) < BATCH_LINE_MS) break;
          lastBatchLine.set(e.step.step.id, now);
          const c = state.projects.get(e.step.step.project)?.current;
          const left = c ? stepLeftMs(c, now) : undefined;
          write(`${stamp()} ${e.step.step.id} run ${e.attempt}: exit ${e.exitCode}${e.remaining !== undefined ? `, ${e.remaining} left` : ''}${left !== undefined ? `, step ETA ${clock(left)}` : ''}`);
          break;
        }
        case 'step-end': {
          const mark = e.status === 'failed' ? 'FAILED' : e.status === 'interrupted' ? 'INTERRUPTED' : e.status;
          write(`${stamp()} ${e.step.step.id} ${mark} in ${formatMs(e.durationMs)}${e.attempts > 1 ? ` (${e.attempts} runs)` : ''}${e.message && e.status !== 'failed' ? `: ${e.message}` : ''}; ${runTimes(state, now)}`);
          break;
        }
        case 'snapshot-start':
          write(`${stamp()} snapshot before ${e.beforeStep}: ${e.databases.join(', ')} into ${e.dir}`);
          break;
        case 'snapshot':
          write(`${stamp()} snapshot before ${e.beforeStep} in ${formatMs(e.durationMs)}: ${snapshotLine(e.databases)}`);
          break;
        case 'checkpoint':
          write(`${stamp()} checkpoint ${e.project}@${e.release}: ${versionsLine(e.versions)}`);
          break;
        case 'run-end':
          write(`${stamp()} run ${e.runId} ${e.status === 'succeeded' ? e.status : e.status.toUpperCase()} after ${clock(now - state.startedAt)}; logs in ${state.logs}`);
          break;
        default:
          break;
      }
    },
    log: (text) => write(text),
    stop() {},
  };
}

/** Redraws at most this often on events, and at least this often for the clocks. */
const REDRAW_MS = 100;
const TICK_MS = 1000;

/**
 * The terminal renderer. `write` puts raw text on the terminal; `columns`
 * reads its width. The picture stays on screen when the run ends, however it
 * ends (a signal included), with every project marked and the logs named.
 */
export function liveRenderer(write: (text: string) => void, columns: () => number, options: { color: boolean; parallel?: number }): Renderer {
  const state = initialState(Date.now(), options.parallel ?? 1);
  const out = screen(write, columns);
  let pending: NodeJS.Timeout | undefined;
  let stopped = false;
  const draw = () => {
    pending = undefined;
    if (state.projects.size > 0 || state.downloads.size > 0) out.draw(frame(state, Date.now(), { columns: columns(), color: options.color }));
  };
  const tick = setInterval(draw, TICK_MS);
  tick.unref();
  return {
    on(e) {
      if (stopped) return;
      apply(state, e, Date.now());
      if (e.type === 'snapshot-start') out.log(`snapshot before ${e.beforeStep}: ${e.databases.join(', ')}…`);
      else if (e.type === 'snapshot') out.log(`snapshot before ${e.beforeStep} in ${formatMs(e.durationMs)}: ${snapshotLine(e.databases)}`);
      else if (e.type === 'env' && !e.cached) out.log(`env ${e.env}: unpacked into ${e.root}`);
      if (e.type === 'run-end' || e.type === 'step-end') draw();
      else pending ??= setTimeout(draw, REDRAW_MS);
    },
    log(text) {
      if (stopped) return write(text.endsWith('\n') ? text : `${text}\n`);
      out.log(text);
    },
    stop() {
      if (stopped) return;
      clearInterval(tick);
      if (pending) clearTimeout(pending);
      // A run that never started (an env that could not be provisioned) leaves no picture of waiting projects behind.
      if (state.runId === undefined) out.clear();
      else draw();
      stopped = true;
      out.close();
    },
  };
}

export { formatBytes };

/** Downloads by bytes: one bar per env on a TTY; otherwise a line when a download starts, is retried or ends. */
export interface DownloadRenderer {
  progress(env: string, bytes: number, total: number | undefined, attempt: number): void;
  done(env: string, line: string): void;
  stop(): void;
}

export function downloadRenderer(tty: boolean, stream: NodeJS.WriteStream, write: (line: string) => void): DownloadRenderer {
  const attempts = new Map<string, number>();
  if (!tty) {
    return {
      progress(env, bytes, total, attempt) {
        if (attempts.get(env) === attempt) return;
        attempts.set(env, attempt);
        write(attempt === 1 ? `env ${env}: downloading${total !== undefined ? ` ${formatBytes(total)}` : ''}` : `env ${env}: attempt ${attempt}, from ${formatBytes(bytes)}`);
      },
      done: (_env, line) => write(line),
      stop() {},
    };
  }
  const multi = new cliProgress.MultiBar(
    { stream, format: ' {env} [{bar}] {got}/{size} {note}', barsize: 24, hideCursor: true, clearOnComplete: false },
    cliProgress.Presets.shades_classic,
  );
  const bars = new Map<string, cliProgress.SingleBar>();
  return {
    progress(env, bytes, total, attempt) {
      let bar = bars.get(env);
      if (!bar) bars.set(env, (bar = multi.create(total ?? 0, 0, { env, got: '0 B', size: '?', note: '' })));
      if (total !== undefined) bar.setTotal(total);
      bar.update(bytes, { got: formatBytes(bytes), size: total === undefined ? '?' : formatBytes(total), note: attempt > 1 ? `attempt ${attempt}` : '' });
    },
    done(env, line) {
      const bar = bars.get(env);
      if (bar) bar.update({ note: 'done' });
      else multi.log(`${line}\n`);
    },
    stop: () => multi.stop(),
  };
}
