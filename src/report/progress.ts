import cliProgress from 'cli-progress';
import type { RunEvent } from '../runner/events.js';
import { formatBytes, shellQuote } from './format.js';
import { formatMs, versionsLine } from './render.js';

/**
 * Two renderers of run events: progress bars per project on a TTY, and
 * plain timestamped lines otherwise (CI logs, pipes, `tee`).
 */
export interface Renderer {
  on(e: RunEvent): void;
  stop(): void;
}

function snapshotLine(dbs: readonly { database: string; file: string | null; bytes: number | null }[]): string {
  return dbs.map((d) => (d.file === null ? `${d.database} (absent)` : `${d.database} ${((d.bytes ?? 0) / 1024).toFixed(0)} KiB`)).join(', ');
}

export function lineRenderer(write: (line: string) => void): Renderer {
  const stamp = () => new Date().toISOString().slice(11, 19);
  return {
    on(e) {
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
          write(`${stamp()} run ${e.runId}: ${e.plan.steps.length} steps over ${e.plan.hops.length} hops; logs in ${e.runDir}/logs`);
          break;
        case 'step-start':
          write(`${stamp()} ${e.step.step.id} ${e.step.step.kind} [${e.step.step.env}]: ${shellQuote(e.argv)}`);
          break;
        case 'step-batch':
          write(`${stamp()} ${e.step.step.id} run ${e.attempt}: exit ${e.exitCode}${e.remaining !== undefined ? `, ${e.remaining} left` : ''}`);
          break;
        case 'step-end':
          write(`${stamp()} ${e.step.step.id} ${e.status} in ${formatMs(e.durationMs)}${e.attempts > 1 ? ` (${e.attempts} runs)` : ''}${e.message && e.status !== 'failed' ? `: ${e.message}` : ''}`);
          break;
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
          write(`${stamp()} run ${e.runId} ${e.status}`);
          break;
      }
    },
    stop() {},
  };
}

export function barRenderer(stream: NodeJS.WriteStream): Renderer {
  const multi = new cliProgress.MultiBar(
    {
      stream,
      format: ' {project} [{bar}] {value}/{total} {hop} {status}',
      barsize: 20,
      hideCursor: true,
      clearOnComplete: false,
      autopadding: true,
    },
    cliProgress.Presets.shades_classic,
  );
  const bars = new Map<string, cliProgress.SingleBar>();
  const done = new Map<string, number>();
  return {
    on(e) {
      switch (e.type) {
        case 'run-start': {
          const width = Math.max(...e.plan.projects.map((p) => p.project.length));
          for (const p of e.plan.projects) {
            if (p.steps.length === 0) continue;
            bars.set(p.project, multi.create(p.steps.length, 0, { project: p.project.padEnd(width), hop: '', status: 'waiting' }));
            done.set(p.project, 0);
          }
          break;
        }
        case 'snapshot-start':
          multi.log(`snapshot before ${e.beforeStep}: ${e.databases.join(', ')}…\n`);
          break;
        case 'snapshot':
          multi.log(`snapshot before ${e.beforeStep} in ${formatMs(e.durationMs)}: ${snapshotLine(e.databases)}\n`);
          break;
        case 'step-start':
          bars.get(e.step.step.project)?.update({ hop: e.step.step.release, status: `${e.step.step.kind} …` });
          break;
        case 'step-batch':
          bars.get(e.step.step.project)?.update({ status: `${e.step.step.kind} run ${e.attempt}${e.remaining !== undefined ? `, ${e.remaining} left` : ''}` });
          break;
        case 'step-end': {
          const n = (done.get(e.step.step.project) ?? 0) + 1;
          done.set(e.step.step.project, n);
          bars.get(e.step.step.project)?.update(n, { status: `${e.step.step.kind} ${e.status} (${formatMs(e.durationMs)})` });
          break;
        }
        case 'run-end':
          multi.stop();
          break;
        default:
          break;
      }
    },
    stop() {
      multi.stop();
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
