import { createInterface } from 'node:readline/promises';
import { loadContext } from '../core/context.js';
import { placementNotes } from '../database/placement.js';
import { rollback, type RollbackChoice, type RollbackPoint } from '../core/rollback.js';
import { LeapfrogError } from '../errors.js';
import { rollbackJson, rollbackPreviewText, rollbackText } from '../report/rollback.js';
import type { Io } from './io.js';
import { bool, contextFrom, formatOf, num, required, stateDirOf, type Args } from './options.js';
import { commandLine, stateFlags } from '../state-dir.js';

export function parsePoint(raw: string, stateDir: string): RollbackPoint {
  if (raw === 'start') return 'start';
  if (/^\d+$/.test(raw) && Number(raw) > 0) return Number(raw);
  throw new LeapfrogError('input', `--to ${raw}: expected a checkpoint id (a number shown by \`${commandLine(['ledger', 'show', ...stateFlags(stateDir)])}\`) or start (before the first hop)`);
}

/**
 * The confirmation: on a terminal, the preview and a y/N question on stderr
 * (stdout stays the result); elsewhere (a script, a pipe, cron) nobody can
 * answer, so the rollback is refused unless --yes said so up front, as
 * `terraform destroy` does without -auto-approve. Ctrl-C at the question is a no.
 */
async function confirmOnTerminal(io: Io, c: RollbackChoice): Promise<boolean> {
  if (!process.stdin.isTTY) {
    throw new LeapfrogError('input', 'rollback restores the databases and discards what ran after that point, and asks first on a terminal; stdin is not one. Nothing was changed. Read the preview, then pass --yes to roll back:', {
      details: rollbackPreviewText(c).split('\n'),
    });
  }
  io.err(rollbackPreviewText(c));
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    const answer = await new Promise<string>((resolve) => {
      rl.once('SIGINT', () => resolve(''));
      rl.once('close', () => resolve(''));
      rl.question('Roll back? [y/N] ').then(resolve, () => resolve(''));
    });
    return /^y(es)?$/i.test(answer.trim());
  } finally {
    rl.close();
  }
}

/** `leapfrog rollback --to CHECKPOINT|start [--dry-run] [--yes]`: restore exactly that point after a confirmation, or refuse saying which points can be. */
export async function handler(args: Args, io: Io): Promise<void> {
  const to = parsePoint(required(args, 'to', 'a checkpoint id from `leapfrog ledger show`, or start'), stateDirOf(args));
  const yes = bool(args, 'yes');
  const options = {
    to,
    dryRun: bool(args, 'dry-run'),
    waitLockSeconds: num(args, 'wait-lock', { min: 0, what: 'of seconds' }),
    force: bool(args, 'force'),
    confirm: yes ? undefined : (c: RollbackChoice) => confirmOnTerminal(io, c),
  };
  const ctx = loadContext(contextFrom(args));
  for (const n of placementNotes(ctx.target)) io.err(`leapfrog: ${n}`);
  const r = await rollback(ctx, options, (text) => io.err(text));
  io.out(formatOf(args) === 'json' ? JSON.stringify(rollbackJson(ctx, r), null, 2) : rollbackText(r));
}
