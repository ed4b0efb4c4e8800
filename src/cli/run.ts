import { loadContext } from '../core/context.js';
import { placementNotes } from '../database/placement.js';
import { inspect } from '../core/inspect.js';
import { refusalError } from '../core/preflight.js';
import { run, type CoreEvent } from '../core/run.js';
import type { SnapshotChoice } from '../runner/snapshot-plan.js';
import { preflightNotes } from '../report/preflight.js';
import { wantColor } from '../report/progress-frame.js';
import { lineRenderer, liveRenderer } from '../report/progress.js';
import { planJson, planSummary, planText, runJson, runText } from '../report/render.js';
import type { Io } from './io.js';
import { bool, contextFrom, formatOf, num, str, type Args } from './options.js';

/** `leapfrog run`: parse, call the core, render its events and result. */
export async function handler(args: Args, io: Io): Promise<void> {
  const json = formatOf(args) === 'json';
  const until = str(args, 'until');
  const options = {
    until,
    parallel: num(args, 'parallel', { whole: true, min: 1, what: 'of projects' }),
    waitLockSeconds: num(args, 'wait-lock', { min: 0, what: 'of seconds' }),
    snapshot: (str(args, 'snapshot') ?? 'auto') as SnapshotChoice,
    force: bool(args, 'force'),
    resume: bool(args, 'resume'),
    acceptDrift: bool(args, 'accept-drift'),
    isolateNetwork: bool(args, 'isolate-network'),
  };
  const ctx = loadContext(contextFrom(args));
  for (const n of placementNotes(ctx.target)) io.err(`leapfrog: ${n}`);
  const show = (pre: Awaited<ReturnType<typeof inspect>>, dryRun: boolean) =>
    io.out(json ? JSON.stringify({ ...planJson(pre.plan!, pre.target, pre.steps!), dryRun }, null, 2) : planText(pre.plan!, pre.target, pre.steps!, ctx.layout.configDir));

  if (bool(args, 'dry-run')) {
    // A dry run changes nothing, so it takes no lock (like `plan`).
    const pre = await inspect(ctx, options);
    for (const n of preflightNotes(pre, ctx.layout)) io.err(`leapfrog: ${n}`);
    if (pre.plan && pre.steps) show(pre, true);
    if (pre.refusals.length > 0) throw refusalError(pre.refusals);
    return;
  }

  const renderer = io.tty ? liveRenderer(io.errRaw, io.columns, { color: wantColor(bool(args, 'color')), parallel: options.parallel }) : lineRenderer(io.err);
  const onEvent = (e: CoreEvent) => {
    // Everything said during the run goes through the renderer, so a terminal's picture stays whole.
    if (e.type === 'note' || e.type === 'warning') renderer.log(`leapfrog: ${e.text}`);
    else if (e.type === 'signal') renderer.log(e.text);
    else if (e.type === 'planned') {
      if (!json) renderer.log(planSummary(e.preflight.plan!, e.preflight.target));
      if (options.snapshot === 'none') renderer.log('Snapshots: none (--snapshot none). leapfrog cannot roll this run back; only your own backup can.');
      renderer.on(e);
    } else renderer.on(e);
  };
  let outcome;
  try {
    outcome = await run(ctx, options, onEvent);
  } finally {
    renderer.stop();
  }
  const { preflight: pre, result } = outcome;
  if (!result) return show(pre, false);
  io.out(json ? JSON.stringify(runJson(ctx, result, result.snapshotMode), null, 2) : runText(ctx, result, result.snapshotMode));
  if (result.error) throw result.error;
}
