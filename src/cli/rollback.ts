import { loadContext } from '../core/context.js';
import { rollback, type RollbackPoint } from '../core/rollback.js';
import { LeapfrogError } from '../errors.js';
import { rollbackJson, rollbackText } from '../report/rollback.js';
import type { Io } from './io.js';
import { bool, contextFrom, formatOf, num, required, type Args } from './options.js';

export function parsePoint(raw: string): RollbackPoint {
  if (raw === 'start') return 'start';
  if (/^\d+$/.test(raw) && Number(raw) > 0) return Number(raw);
  throw new LeapfrogError('input', `--to ${raw}: expected a checkpoint id (a number shown by \`leapfrog ledger show\`) or start (before the first hop)`);
}

/** `leapfrog rollback --to CHECKPOINT|start [--dry-run]`: restore exactly that point, or refuse saying which points can be. */
export async function handler(args: Args, io: Io): Promise<void> {
  const to = parsePoint(required(args, 'to', 'a checkpoint id from `leapfrog ledger show`, or start'));
  const options = { to, dryRun: bool(args, 'dry-run'), waitLockSeconds: num(args, 'wait-lock', { min: 0, what: 'of seconds' }), force: bool(args, 'force') };
  const ctx = loadContext(contextFrom(args));
  const r = await rollback(ctx, options, (text) => io.err(text));
  io.out(formatOf(args) === 'json' ? JSON.stringify(rollbackJson(ctx, r), null, 2) : rollbackText(r));
}
