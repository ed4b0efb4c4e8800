import yargs from 'yargs';
import { LeapfrogError, type ErrorKind } from '../errors.js';
import { LEAPFROG_VERSION } from '../version.js';
import { bundleModule } from './bundle.js';
import { envsModule } from './envs.js';
import { checkMigrationsModule } from './check-migrations.js';
import { ExitCode } from './exit.js';
import { ledgerModule } from './ledger.js';
import { planModule } from './plan.js';
import { rollbackModule } from './rollback.js';
import { rehearseModule } from './rehearse.js';
import { runModule } from './run.js';

/**
 * The one place errors become exit codes (STYLE.md, "thin commands, one exit
 * point"). The table is in the README.
 */
export const EXIT_CODES: Record<ErrorKind, number> = {
  'step-failed': 1,
  input: 2,
  refused: 3,
  locked: 4,
  interrupted: 130,
  unexpected: 255,
};

function report(err: unknown): number {
  if (err instanceof ExitCode) return err.code;
  if (err instanceof LeapfrogError) {
    process.stderr.write(`leapfrog: ${err.message}\n${err.details.map((d) => `  ${d}\n`).join('')}`);
    if (err.kind === 'unexpected' && err.cause instanceof Error && err.cause.stack) process.stderr.write(`${err.cause.stack}\n`);
    return EXIT_CODES[err.kind];
  }
  process.stderr.write(`leapfrog: unexpected error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  return EXIT_CODES.unexpected;
}

export async function main(argv: string[]): Promise<number> {
  try {
    await yargs(argv)
      .scriptName('leapfrog')
      .usage('$0 <command> [options]\n\nMove a cloud\'s databases across several releases, offline, checkpointed and resumable.')
      .command(planModule)
      .command(runModule)
      .command(ledgerModule)
      .command(rollbackModule)
      .command(envsModule)
      .command(bundleModule)
      .command(checkMigrationsModule)
      .command(rehearseModule)
      .demandCommand(1, 'name a command: plan, check-migrations, run, rehearse, ledger, rollback, envs or bundle')
      .strict()
      // A flag given twice: the last one wins, as with most Unix tools (not an array no command expects).
      .parserConfiguration({ 'duplicate-arguments-array': false })
      .version(LEAPFROG_VERSION)
      .help()
      .wrap(Math.min(100, process.stdout.columns ?? 80))
      .fail((msg, err) => {
        if (err) throw err;
        throw new LeapfrogError('input', `${msg} (see leapfrog --help)`);
      })
      .parseAsync();
    return 0;
  } catch (err) {
    return report(err);
  }
}


