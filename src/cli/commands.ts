import type { Argv, CommandModule } from 'yargs';
import { ExitCode } from './exit.js';
import { processIo, type Io } from './io.js';
import { FETCH_FLAGS, numeric, TARGET_FLAGS, withFlags, type Args, type FlagName } from './options.js';

/**
 * The command line's table of contents: each command's name, description
 * and flags. The work of a command is in its own file (src/cli/<command>.ts:
 * parse, call the core, render), imported only when that command runs, so
 * `--version`, `--help` and a mistyped flag answer without loading mysql2, better-sqlite3,
 * execa or undici (bench/startup.ts measures it).
 */

type Handler = (args: Args, io: Io) => Promise<number | void>;

function lazy(command: string, describe: string, builder: (y: Argv) => Argv, load: () => Promise<{ handler: Handler }>): CommandModule {
  return {
    command,
    describe,
    builder,
    handler: async (args) => {
      const code = await (await load()).handler(args as Args, processIo);
      if (code) throw new ExitCode(code);
    },
  };
}

const flags = (y: Argv, names: readonly FlagName[], overrides?: Parameters<typeof withFlags>[2]) => withFlags(y, names, overrides);

export const COMMANDS: readonly CommandModule[] = [
  lazy('plan', 'show the steps still to run against the target, with their exact argv (changes nothing)', (y) => flags(y, [...TARGET_FLAGS, 'offline', 'until']), () => import('./plan.js')),
  lazy(
    'check-migrations',
    'pre-flight report: where each database stands, what will run, what will stop it (changes nothing; exit 0 ok, 1 warnings, 2 failures)',
    (y) =>
      flags(y, [...TARGET_FLAGS, 'offline', 'until'], { format: { choices: ['text', 'json', 'markdown'] }, 'state-dir': { describe: 'where the ledger is read from (never created) and free space is measured' } }).option(
        'max-transaction-age',
        numeric('seconds after which an open transaction on a chain database is a Failure', 60),
      ),
    () => import('./check-migrations.js'),
  ),
  lazy(
    'run',
    'execute the plan, checkpointing after every hop',
    (y) =>
      flags(y, [...TARGET_FLAGS, ...FETCH_FLAGS, 'until', 'parallel', 'wait-lock', 'force'])
        .option('dry-run', { type: 'boolean', default: false, describe: 'print the plan and run nothing (takes no lock)' })
        .option('snapshot', { choices: ['first-hop', 'every-hop', 'none'], default: 'first-hop', describe: 'snapshot the databases before the first hop, before every hop, or not at all (for `rollback`)' })
        .option('resume', { type: 'boolean', default: false, describe: 'continue after a crashed or interrupted run (also the default behaviour); required when the dead run was on another host' })
        .option('accept-drift', { type: 'boolean', default: false, describe: 'go on although a schema changed since its last checkpoint (recorded)' })
        .option('isolate-network', { type: 'boolean', default: false, describe: 'run steps in a new network namespace (unshare); the target must be SQLite or a MySQL unix socket' }),
    () => import('./run.js'),
  ),
  lazy(
    'rehearse',
    'restore a dump into a scratch server, run the chain there, audit row counts and report the timings',
    (y) =>
      flags(y, ['chain', 'defaults-file', 'state-dir', 'cache-dir', 'envs', 'format', ...FETCH_FLAGS, 'parallel'], {
        'state-dir': { describe: 'the rehearsal gets STATE_DIR/rehearsals/<id>/ with its own ledger' },
        'defaults-file': { describe: 'MySQL option file for --server and --from (user, password, host, port, socket)' },
        parallel: { describe: 'run up to N projects at once (as the real run will)' },
      })
        .option('dump', { type: 'string', array: true, describe: 'SQL dump (plain or gzip; one per database or one with several), or SQLite .sqlite3 files' })
        .option('from', { type: 'string', requiresArg: true, describe: "copy the chain's databases from this live target instead (mysql://… consistent dumps, or sqlite:DIR); nothing there is changed" })
        .option('server', { type: 'string', requiresArg: true, describe: 'rehearse on this existing server (mysql://user@host:port), every database renamed with --prefix' })
        .option('prefix', { type: 'string', requiresArg: true, describe: "with --server: prefix for the rehearsal's databases (default lfrXXXXXX_)" })
        .option('mysqld', { type: 'string', requiresArg: true, describe: 'the server binary for the scratch server (default mariadbd or mysqld on PATH)' })
        .option('keep', { type: 'boolean', default: false, describe: 'leave the scratch server running (or the prefixed databases) afterwards' })
        .option('jobs', numeric('restore over N connections', 4))
        .option('max-statement-bytes', numeric('refuse a dump whose one statement is longer than this (default 64 MiB; bounds memory)'))
        .option('report', { type: 'string', requiresArg: true, describe: 'also write a self-contained HTML report here' }),
    () => import('./rehearse.js'),
  ),
  lazy(
    'rollback',
    'restore the snapshots holding exactly a checkpoint (ids from `ledger show`), or --to start',
    (y) =>
      flags(y, [...TARGET_FLAGS, 'offline', 'wait-lock', 'force'])
        .option('to', { type: 'string', requiresArg: true, describe: 'CHECKPOINT id, or start (before the first hop)' })
        .option('dry-run', { type: 'boolean', default: false, describe: 'say which databases, snapshot files, sizes and versions would be restored; change nothing' }),
    () => import('./rollback.js'),
  ),
  lazy(
    'ledger [action] [run]',
    "history: `ledger runs` lists runs, `ledger show [RUN]` shows one run's steps, timings and checkpoints",
    (y) =>
      flags(y.positional('action', { choices: ['runs', 'show'], describe: 'runs (default) or show' }).positional('run', { type: 'string', describe: 'run id for show (default: the latest)' }), ['state-dir', 'format', 'offline'], {
        offline: { describe: 'no network (the ledger never needs any)' },
      }),
    () => import('./ledger.js'),
  ),
  lazy(
    'envs <action>',
    'the env cache: list, verify, gc, provision',
    (y) =>
      flags(y.positional('action', { choices: ['list', 'verify', 'gc', 'provision'], describe: 'what to do' }), ['envs', 'state-dir', 'cache-dir', 'format', ...FETCH_FLAGS, 'parallel'], {
        envs: { describe: "directory of env files (default: each chain's own)" },
        parallel: { default: 4, describe: 'provision: downloads at once' },
      })
        .option('chain', { type: 'string', array: true, describe: 'a chain whose envs count (repeatable)' })
        .option('chains', { type: 'string', array: true, describe: 'a directory of chain files that all count (repeatable)' })
        .option('older-than', numeric('gc: only entries unpacked more than DAYS ago'))
        .option('dry-run', { type: 'boolean', default: false, describe: 'gc: say what would go, remove nothing' }),
    () => import('./envs.js'),
  ),
  lazy(
    'bundle <action> [file]',
    'one file carrying a chain, its env files and env tarballs into an air-gapped window: create, import',
    (y) =>
      flags(y.positional('action', { choices: ['create', 'import'] }).positional('file', { type: 'string', describe: 'import: the bundle file' }), ['envs', 'state-dir', 'cache-dir', 'format', ...FETCH_FLAGS], {
        envs: { describe: "create: directory of env files (default: the chain's own)" },
      })
        .option('chain', { type: 'string', requiresArg: true, describe: 'create: the chain to bundle' })
        .option('output', { alias: 'o', type: 'string', requiresArg: true, describe: 'create: the bundle file to write' })
        .option('to', { type: 'string', requiresArg: true, describe: 'import: where the chain and env files go (default: STATE_DIR/bundles/NAME)' }),
    () => import('./bundle.js'),
  ),
];
