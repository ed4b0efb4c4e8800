import { loadContext } from '../core/context.js';
import { placementNotes } from '../database/placement.js';
import { refusalError } from '../core/preflight.js';
import { status } from '../core/status.js';
import { preflightNotes } from '../report/preflight.js';
import { STATUS_EXIT, statusJson, statusText } from '../report/status.js';
import type { Io } from './io.js';
import { contextFrom, formatOf, type Args } from './options.js';

/**
 * `leapfrog status`: per project and database the version, the release
 * reached, the next hop and the steps pending; the last run and the last
 * rehearsal; in the manner of `flyway info` and `atlas migrate status`.
 * Changes nothing. Exit 0 at the chain's end, 1 with work pending, 2 when
 * the last run died, failed or was interrupted (2 is also bad input, as
 * everywhere, with a message on stderr and nothing on stdout); 3 when the
 * plan is refused, as `plan` does.
 */
export async function handler(args: Args, io: Io): Promise<number> {
  const ctx = loadContext(contextFrom(args));
  for (const n of placementNotes(ctx.target)) io.err(`leapfrog: ${n}`);
  const s = await status(ctx);
  for (const n of preflightNotes(s.pre, ctx.layout)) io.err(`leapfrog: ${n}`);
  io.out(formatOf(args) === 'json' ? JSON.stringify(statusJson(s), null, 2) : statusText(s));
  if (!s.pre.plan && s.verdict !== 'failed' && s.pre.refusals.length > 0) throw refusalError(s.pre.refusals);
  return STATUS_EXIT[s.verdict];
}
