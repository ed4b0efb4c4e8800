import type { CommandModule } from 'yargs';
import { evaluate, exitCodeFor, type CheckReport } from '../check/checks.js';
import { gatherFacts } from '../check/gather.js';
import { reportJson, reportMarkdown, reportText } from '../check/render.js';
import { LeapfrogError } from '../errors.js';
import type { CommonArgs } from './context.js';
import { ExitCode } from './exit.js';
import { processIo, type Io } from './io.js';

interface CheckArgs extends Omit<CommonArgs, 'format'> {
  format: 'text' | 'json' | 'markdown';
  offline: boolean;
  until: string | undefined;
  'max-transaction-age': number;
}

/**
 * The pre-flight report: reads the chain, the envs, the target and the
 * ledger (never writing any of them), judges them, and prints the checks and
 * the plan. Exit 0 all Success, 1 a Warning, 2 a Failure, as nova-status.
 */
export async function checkMigrationsCommand(args: CheckArgs, io: Io = processIo): Promise<CheckReport> {
  const age = args['max-transaction-age'];
  if (!Number.isFinite(age) || age < 0) throw new LeapfrogError('input', `--max-transaction-age ${age}: must be a number of seconds, 0 or more`);
  const facts = await gatherFacts({
    chain: args.chain,
    db: args.db,
    stateDir: args['state-dir'],
    cacheDir: args['cache-dir'],
    envs: args.envs,
    offline: args.offline,
    until: args.until,
    maxTransactionAge: age,
  });
  const report = evaluate(facts);
  const configDir = facts.layout?.configDir;
  io.out(args.format === 'json' ? JSON.stringify(reportJson(report), null, 2) : args.format === 'markdown' ? reportMarkdown(report, configDir) : reportText(report, configDir));
  return report;
}

export const checkMigrationsModule: CommandModule<object, CheckArgs> = {
  command: 'check-migrations',
  describe: 'pre-flight report: where each database stands, what will run, what will stop it (changes nothing; exit 0 ok, 1 warnings, 2 failures)',
  // The common flags, declared here rather than through commonOptions():
  // yargs appends choices, so --format could not gain `markdown` there.
  builder: (y) =>
    y
      .option('chain', { type: 'string', demandOption: true, describe: 'chain file (YAML or JSON)' })
      .option('db', { type: 'string', demandOption: true, describe: 'target: sqlite:DIR or mysql://user@host:port' })
      .option('state-dir', { type: 'string', default: './.leapfrog', describe: 'where the ledger is read from (never created) and free space is measured' })
      .option('cache-dir', { type: 'string', describe: 'env cache (default: STATE_DIR/envs)' })
      .option('envs', { type: 'string', describe: 'directory of env files (default: the chain\'s envs:, else ../envs next to the chain)' })
      .option('format', { choices: ['text', 'json', 'markdown'] as const, default: 'text' as const, describe: 'output format' })
      .option('offline', { type: 'boolean', default: false, describe: 'the window has no network: an env not in the cache is a Failure' })
      .option('until', { type: 'string', describe: 'check the plan up to this release' })
      .option('max-transaction-age', { type: 'number', default: 60, describe: 'seconds after which an open transaction on a chain database is a Failure' }) as never,
  handler: async (args) => {
    const report = await checkMigrationsCommand(args);
    const code = exitCodeFor(report.result);
    if (code !== 0) throw new ExitCode(code);
  },
};
