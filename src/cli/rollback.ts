import type { CommandModule } from 'yargs';
import { LeapfrogError } from '../errors.js';
import { withLedger } from '../ledger/ledger.js';
import { finalVersionsText, versionsJson } from '../report/render.js';
import { offlineGuard } from '../runner/guard.js';
import { rollback, type RollbackPoint } from '../runner/rollback.js';
import { withTargetLock } from '../database/lock.js';
import { withTarget } from '../database/session.js';
import { describeTarget } from '../database/url.js';
import { commonOptions, load, type CommonArgs } from './context.js';
import { processIo, type Io } from './io.js';

interface RollbackArgs extends CommonArgs {
  to: string;
  'wait-lock': number;
  force: boolean;
}

export function parsePoint(raw: string): RollbackPoint {
  if (raw === 'start') return 'start';
  if (/^\d+$/.test(raw) && Number(raw) > 0) return Number(raw);
  throw new LeapfrogError('input', `--to ${raw}: expected a checkpoint id (a number shown by \`leapfrog ledger show\`) or start (before the first hop)`);
}

/** Restore the snapshot taken at or before a checkpoint; the next run plans from there. */
export async function rollbackCommand(args: RollbackArgs, io: Io = processIo): Promise<void> {
  const to = parsePoint(String(args.to));
  if (!(args['wait-lock'] >= 0)) throw new LeapfrogError('input', `--wait-lock ${args['wait-lock']}: must be a number of seconds, 0 or more`);
  const ctx = load(args);
  const target = describeTarget(ctx.target);
  await withLedger(ctx.layout.stateDir, (ledger) =>
    withTarget(ctx.target, (session) =>
      withTargetLock(ctx.target, ctx.chain, ctx.layout.stateDir, { waitSeconds: args['wait-lock'], command: 'rollback' }, async () => {
        await offlineGuard(session, ctx.chain, args.force, io.err);
        const r = await rollback(ctx.chain, session, ledger, to);
        if (args.format === 'json') {
          io.out(
            JSON.stringify(
              {
                format: 'leapfrog.rollback/v1',
                chain: ctx.chain.name,
                target,
                rollback: r.rollbackId,
                to: to === 'start' ? 'start' : r.toCheckpoint,
                restored: r.restored.map((s) => ({ database: s.database, snapshot: s.id, takenBefore: s.before_step, run: s.run_id, file: s.file, sha256: s.sha256 })),
                versions: versionsJson(r.versions),
              },
              null,
              2,
            ),
          );
          return;
        }
        const lines = [`Rolled back ${to === 'start' ? 'to before the first hop' : `to checkpoint ${to}`} (rollback ${r.rollbackId}); restored, each after verifying its sha256:`];
        for (const s of r.restored) lines.push(`  ${s.database}: ${s.file === null ? 'did not exist then: dropped' : `snapshot ${s.id}, taken in run ${s.run_id} before ${s.before_step}`}`);
        lines.push(`Versions now:\n${finalVersionsText(r.versions)}`, 'The next run plans from these versions.');
        io.out(lines.join('\n'));
      }),
    ),
  );
}

export const rollbackModule: CommandModule<object, RollbackArgs> = {
  command: 'rollback',
  describe: 'restore the snapshot taken at or before a checkpoint (ids from `ledger show`), or --to start',
  builder: (y) =>
    commonOptions(y)
      .option('to', { type: 'string', demandOption: true, describe: 'CHECKPOINT id, or start (before the first hop)' })
      .option('force', { type: 'boolean', default: false, describe: 'restore even while other client sessions are connected to the chain\'s databases' })
      .option('wait-lock', { type: 'number', default: 0, describe: 'wait up to SECONDS for a run on this target to finish' }) as never,
  handler: (args) => rollbackCommand(args),
};
