import type { CommandModule } from 'yargs';
import { plan } from '../chain/plan.js';
import { withLedger } from '../ledger/ledger.js';
import { planJson, planText } from '../report/render.js';
import { prepare } from '../runner/runner.js';
import { readState } from '../runner/state.js';
import { withTarget } from '../database/session.js';
import { describeTarget } from '../database/url.js';
import { commonOptions, load, type CommonArgs } from './context.js';
import { processIo, type Io } from './io.js';

interface PlanArgs extends CommonArgs {
  until: string | undefined;
}

/** Print the steps `run` would execute, with their exact argv. Changes nothing. */
export async function planCommand(args: PlanArgs, io: Io = processIo): Promise<void> {
  const ctx = load(args);
  await withLedger(ctx.layout.stateDir, (ledger) =>
    withTarget(ctx.target, async (session) => {
      const p = plan({ ...(await readState(ctx.chain, session, ledger)), until: args.until });
      const steps = prepare(ctx.chain, p, ctx.target, ctx.layout);
      const target = describeTarget(ctx.target);
      io.out(args.format === 'json' ? JSON.stringify(planJson(p, target, steps), null, 2) : planText(p, target, steps, ctx.layout.configDir));
    }),
  );
}

export const planModule: CommandModule<object, PlanArgs> = {
  command: 'plan',
  describe: 'show the steps still to run against the target (changes nothing)',
  builder: (y) => commonOptions(y).option('until', { type: 'string', describe: 'stop after this release' }) as never,
  handler: (args) => planCommand(args),
};
