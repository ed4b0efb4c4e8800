import { LeapfrogError, type ErrorKind } from '../errors.js';
import { LEAPFROG_VERSION } from '../version.js';
import { COMMANDS } from './commands.js';
import { ExitCode } from './exit.js';
import { processIo, quietBrokenPipes } from './io.js';

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
    processIo.err(`leapfrog: ${err.message}\n${err.details.map((d) => `  ${d}\n`).join('')}`);
    if (err.kind === 'unexpected' && err.cause instanceof Error && err.cause.stack) processIo.err(err.cause.stack);
    return EXIT_CODES[err.kind];
  }
  processIo.err(`leapfrog: unexpected error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  return EXIT_CODES.unexpected;
}

/** Edit distance, for "did you mean": a mistyped flag is the commonest input error at 3 a.m. */
export function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return row[b.length]!;
}

/** yargs' "Unknown argument(s): x, y", with the nearest flag the command knows for each. */
function explainUnknown(msg: string, known: readonly string[]): string {
  const m = /^Unknown arguments?: (.*)$/.exec(msg);
  if (!m) return msg;
  const names = m[1]!.split(', ');
  const parts = names.map((n) => {
    const best = known.map((k) => ({ k, d: distance(n, k) })).sort((a, b) => a.d - b.d)[0];
    const flag = n.length === 1 ? `-${n}` : `--${n}`;
    return best && best.d <= Math.max(2, Math.floor(n.length / 3)) ? `${flag} (did you mean --${best.k}?)` : flag;
  });
  return `unknown ${names.length === 1 ? 'flag' : 'flags'} ${parts.join(', ')}`;
}

/**
 * Once a command's handler has started, yargs renders that command's whole help
 * (`cacheHelpMessage`, yargs 18 lib/command.js, in case the handler fails and help
 * is to be shown): cliui and string-width on every line, ~50 ms of a cold start
 * that an operator waits for on every `plan`. leapfrog never shows help for a
 * handler's failure (fail() reports the error and its exit code), so the render
 * is skipped. yargs has no option for it; if its internals change this does
 * nothing, and the help is rendered as before.
 */
function skipHelpCache(y: unknown): void {
  const usage = (y as { getInternalMethods?(): { getUsageInstance?(): { cacheHelpMessage?: () => void } } }).getInternalMethods?.().getUsageInstance?.();
  if (usage && typeof usage.cacheHelpMessage === 'function') usage.cacheHelpMessage = () => {};
}

export async function main(argv: string[]): Promise<number> {
  quietBrokenPipes();
  // The one answer that needs no parser: yargs alone is most of a bare start-up.
  if (argv.length === 1 && argv[0] === '--version') {
    processIo.out(`${LEAPFROG_VERSION}\n`);
    return 0;
  }
  try {
    const { default: yargs } = await import('yargs');
    const y = yargs(argv)
      .scriptName('leapfrog')
      .usage("$0 <command> [options]\n\nMove a cloud's databases across several releases, offline, checkpointed and resumable.")
      .command(COMMANDS as never)
      .demandCommand(1, 'name a command: plan, check-migrations, run, rehearse, ledger, rollback, envs or bundle')
      .recommendCommands()
      .strict()
      // A flag given twice is kept as a list: options.ts takes the last value of a single-valued flag (as most
      // Unix tools do) and every value of a repeatable one (--db NAME=URL, --chain for envs).
      .parserConfiguration({ 'duplicate-arguments-array': true, 'flatten-duplicate-arrays': true })
      .version(LEAPFROG_VERSION)
      .help()
      .wrap(Math.min(100, process.stdout.columns ?? 80))
      .fail((msg, err) => {
        // yargs' own parse errors (a flag missing its value) are input errors; anything else is ours to report.
        if (err && err.name !== 'YError') throw err;
        if (err) msg = err.message.replace(/^Not enough arguments following: (.*)$/, (_m, f: string) => `--${f} needs a value`);
        // During a command's parse, the instance holds that command's options.
        const known = Object.keys((y as unknown as { getOptions(): { key: Record<string, unknown> } }).getOptions().key).filter((k) => k.length > 1 && !k.includes('_'));
        const text = msg.startsWith('Did you mean') ? `unknown command ${argv[0]}: ${msg.replace(/^Did/, 'did')}` : explainUnknown(msg, known);
        throw new LeapfrogError('input', `${text} (see leapfrog --help)`);
      });
    skipHelpCache(y);
    await y.parseAsync();
    return 0;
  } catch (err) {
    return report(err);
  }
}
