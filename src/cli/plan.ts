import { loadContext } from '../core/context.js';
import { placementNotes } from '../database/placement.js';
import { inspect } from '../core/inspect.js';
import { refusalError } from '../core/preflight.js';
import { preflightNotes } from '../report/preflight.js';
import { planJson, planText } from '../report/render.js';
import type { Io } from './io.js';
import { contextFrom, formatOf, str, type Args } from './options.js';

/**
 * `leapfrog plan`: the steps `run` would execute, with their exact argv,
 * from the same pre-flight `run` takes. Changes nothing; when `run` would
 * refuse, says why and exits as it would (3).
 */
export async function handler(args: Args, io: Io): Promise<void> {
  const ctx = loadContext(contextFrom(args));
  for (const n of placementNotes(ctx.target)) io.err(`leapfrog: ${n}`);
  const pre = await inspect(ctx, { until: str(args, 'until') });
  for (const n of preflightNotes(pre, ctx.layout)) io.err(`leapfrog: ${n}`);
  if (pre.plan && pre.steps) {
    io.out(formatOf(args) === 'json' ? JSON.stringify(planJson(pre.plan, pre.target, pre.steps), null, 2) : planText(pre.plan, pre.target, pre.steps, ctx.layout.configDir));
  }
  if (pre.refusals.length > 0) throw refusalError(pre.refusals);
}
