import { formatBytes } from './format.js';
import { clock, projectLeftMs, rate, runLeftMs, stepLeftMs, type ProgressState, type ProjectState, type ProjectView } from './progress-model.js';

/**
 * The terminal's picture of a run, drawn whole at every redraw: a row per
 * project (a mark, a bar, steps done, the running step's time, the
 * project's time left, what it does), then the run's time and ETA, then
 * where the logs are. Pure: text in, text out; the screen (screen.ts) puts
 * it on the terminal.
 */

export interface FrameOptions {
  /** Terminal width: project rows are cut to it so none wraps. */
  columns: number;
  color: boolean;
}

/** A mark per state, so a failure reads as one without colour too (NO_COLOR, --no-color, a monochrome terminal). */
export const MARK: Record<ProjectState, string> = { waiting: '·', running: '▸', succeeded: '✓', failed: '✗', interrupted: '!', stopped: '-' };

// SGR colours (ECMA-48): 2 dim, 31 red, 32 green, 33 yellow, 36 cyan.
const SGR: Record<ProjectState, string> = { waiting: '2', running: '36', succeeded: '32', failed: '31', interrupted: '33', stopped: '2' };
const BAR = 16;

/** Colour is for terminals that want it: https://no-color.org (NO_COLOR set and not empty), TERM=dumb, or --no-color turn it off. */
export function wantColor(flag: boolean, env: NodeJS.ProcessEnv = process.env): boolean {
  return flag && !env.NO_COLOR && env.TERM !== 'dumb';
}

function paint(text: string, state: ProjectState, o: FrameOptions): string {
  return o.color ? `\x1b[${SGR[state]}m${text}\x1b[0m` : text;
}

/** Cut `text` to `width` characters, marking the cut. */
function cut(text: string, width: number): string {
  const chars = [...text];
  return chars.length <= width ? text : `${chars.slice(0, Math.max(0, width - 1)).join('')}…`;
}

function what(p: ProjectView, now: number): string {
  const c = p.current;
  if (c) {
    const batch = c.attempt > 0 || c.remaining ? `: run ${c.attempt}${c.remaining ? `, ${c.remaining.count} left` : ''}` : '';
    const perSec = rate(c);
    // The step's own time left at its rate, when a later step without an estimate leaves the project's unknown.
    const stepLeft = projectLeftMs(p, now) === undefined ? `, step ~${clock(stepLeftMs(c, now) ?? 0)}` : '';
    const at = perSec === undefined ? '' : `, ${(perSec * 1000).toFixed(perSec * 1000 >= 10 ? 0 : 1)}/s${stepLeft}`;
    return `${c.step.release} ${c.step.kind}${c.step.name ? ` ${c.step.name}` : ''}${batch}${at}`;
  }
  const l = p.last;
  switch (p.state) {
    case 'waiting':
      return 'waiting';
    case 'running': {
      const next = p.steps[p.ended];
      return next ? `next: ${next.release} ${next.kind}${next.name ? ` ${next.name}` : ''}` : 'checkpoint';
    }
    case 'succeeded':
      return 'done';
    case 'failed':
      return `FAILED: ${l ? `${l.step.release} ${l.step.kind}${l.step.name ? ` ${l.step.name}` : ''}` : ''}${l?.message ? ` ${l.message}` : ''}`;
    case 'interrupted':
      return `INTERRUPTED: ${l ? `${l.step.release} ${l.step.kind}${l.step.name ? ` ${l.step.name}` : ''}` : ''}`;
    case 'stopped':
      return p.ended === 0 ? 'not started' : `stopped after ${p.ended} of ${p.steps.length} steps`;
  }
}

function projectRow(p: ProjectView, width: number, counts: number, now: number, o: FrameOptions): string {
  const total = Math.max(1, p.steps.length);
  const filled = Math.round((BAR * Math.min(p.ended, total)) / total);
  const bar = '█'.repeat(filled) + '░'.repeat(BAR - filled);
  // The running step's time; once the project is over, its last step's (a failure's is news).
  const elapsed = p.current
    ? now - p.current.startedAt
    : p.state === 'failed' || p.state === 'interrupted'
      ? p.last?.durationMs
      : p.state === 'succeeded' && p.startedAt !== undefined
        ? (p.endedAt ?? now) - p.startedAt
        : undefined;
  const left = projectLeftMs(p, now);
  const times = `${elapsed === undefined ? '    ' : clock(elapsed).padStart(4)}  ${p.state === 'running' || p.state === 'waiting' ? `ETA ${left === undefined ? '?   ' : clock(left).padEnd(4)}` : '        '}`;
  const head = `${MARK[p.state]} ${p.project.padEnd(width)} `;
  const rest = `${`${p.ended}/${p.steps.length}`.padEnd(counts)}  ${times}  ${what(p, now)}`;
  const plain = cut(`${head}[${bar}] ${rest}`, o.columns - 1);
  // Colour after cutting, so the cut counts only what shows.
  const shownRest = plain.slice(head.length + BAR + 3);
  return `${paint(MARK[p.state], p.state, o)} ${p.project.padEnd(width)} [${paint(bar, p.state, o)}] ${shownRest}`;
}

function runLine(s: ProgressState, now: number): string {
  const elapsed = clock((s.endedAt ?? now) - s.startedAt);
  const id = s.runId === undefined ? 'run' : `run ${s.runId}`;
  if (s.status !== 'running') return `${id} ${s.status} after ${elapsed}`;
  const left = runLeftMs(s, now);
  const basis = s.estimateFrom ? `from ${s.estimateFrom}` : 'no earlier run of this chain';
  return `${id}  elapsed ${elapsed}  ETA ${left === undefined ? `? (${basis})` : `${clock(left)} (${basis}${[...s.projects.values()].some((p) => p.current && rate(p.current) !== undefined) ? ', data steps at their rate' : ''})`}`;
}

export function frame(s: ProgressState, now: number, o: FrameOptions): string[] {
  const projects = [...s.projects.values()];
  const width = Math.max(0, ...projects.map((p) => p.project.length));
  const counts = Math.max(0, ...projects.map((p) => `${p.steps.length}/${p.steps.length}`.length));
  const lines = projects.map((p) => projectRow(p, width, counts, now, o));
  for (const [env, d] of s.downloads) lines.push(cut(`  env ${env}: downloading ${formatBytes(d.bytes)}${d.total !== undefined ? ` of ${formatBytes(d.total)}` : ''}`, o.columns - 1));
  lines.push(cut(runLine(s, now), o.columns - 1));
  // The whole path, wrapped if it must: a cut path would say nothing (screen.ts counts wrapped rows).
  if (s.logs) lines.push(`logs: ${s.logs}`);
  return lines;
}
