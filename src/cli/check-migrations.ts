import { gatherFacts } from '../check/gather.js';
import { evaluate, exitCodeFor } from '../check/report.js';
import { reportJson, reportMarkdown, reportText } from '../check/render.js';
import type { SnapshotChoice } from '../runner/snapshot-plan.js';
import type { Io } from './io.js';
import { bool, formatOf, num, required, requiredList, str, type Args, stateDirOf } from './options.js';

/**
 * `leapfrog check-migrations`: reads the chain, the envs, the target and the
 * ledger (never writing any of them), judges them with the same pre-flight
 * `run` takes, and prints the checks and the plan. Exit 0 all Success, 1 a
 * Warning, 2 a Failure, as nova-status.
 */
export async function handler(args: Args, io: Io): Promise<number> {
  const facts = await gatherFacts({
    chain: required(args, 'chain', 'the chain file'),
    db: requiredList(args, 'db', 'the target (sqlite:DIR or mysql://user@host:port)'),
    defaultsFile: str(args, 'defaults-file'),
    stateDir: stateDirOf(args),
    cacheDir: str(args, 'cache-dir'),
    envs: str(args, 'envs'),
    offline: bool(args, 'offline'),
    until: str(args, 'until'),
    maxTransactionAge: num(args, 'max-transaction-age', { min: 0, what: 'of seconds' }),
    verifyEnvs: bool(args, 'verify-envs'),
    snapshot: (str(args, 'snapshot') ?? 'auto') as SnapshotChoice,
  });
  const report = evaluate(facts);
  const configDir = facts.layout?.configDir;
  const format = formatOf(args);
  io.out(format === 'json' ? JSON.stringify(reportJson(report), null, 2) : format === 'markdown' ? reportMarkdown(report, configDir) : reportText(report, configDir));
  return exitCodeFor(report.result);
}
