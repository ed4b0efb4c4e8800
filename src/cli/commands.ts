import type { Argv, CommandModule, Options, PositionalOptions } from 'yargs';
import { ExitCode } from './exit.js';
import { processIo, type Io } from './io.js';
import { SNAPSHOT_CHOICES } from '../runner/snapshot-plan.js';
import { FETCH_FLAGS, numeric, str, TARGET_FLAGS, withFlags, type Args, type FlagName } from './options.js';
import { chooseStateDir } from '../state-dir.js';

/**
 * The command line's table of contents: each command's name, description
 * and flags. The work of a command is in its own file (src/cli/<command>.ts:
 * parse, call the core, render), imported only when that command runs, so
 * `--version`, `--help` and a mistyped flag answer without loading mysql2, better-sqlite3,
 * execa or undici (bench/startup.ts measures it).
 */

type Handler = (args: Args, io: Io) => Promise<number | void>;
type Overrides = Parameters<typeof withFlags>[2];

/** One command as data: the shared flags it takes (options.ts), its own options and positionals. */
interface CommandSpec {
  command: string;
  describe: string;
  flags: readonly FlagName[];
  overrides?: Overrides;
  positionals?: Record<string, PositionalOptions>;
  options?: Record<string, Options>;
  /** Shown by --help: what a DBA would type, and why. */
  examples?: readonly (readonly [string, string])[];
  load: () => Promise<{ handler: Handler }>;
}

function command(spec: CommandSpec): CommandModule {
  return {
    command: spec.command,
    describe: spec.describe,
    builder: (y: Argv) => {
      for (const [name, p] of Object.entries(spec.positionals ?? {})) y = y.positional(name, p);
      y = withFlags(y, spec.flags, spec.overrides);
      for (const [name, o] of Object.entries(spec.options ?? {})) y = y.option(name, o);
      for (const [example, why] of spec.examples ?? []) y = y.example(example, why);
      return y;
    },
    handler: async (args) => {
      if (spec.flags.includes('state-dir')) {
        // Resolved once, here, for every command (src/state-dir.ts): handlers read an absolute --state-dir.
        const choice = chooseStateDir(str(args as Args, 'state-dir'));
        (args as Args)['state-dir'] = choice.dir;
        if (choice.note) processIo.err(choice.note);
      }
      const code = await (await spec.load()).handler(args as Args, processIo);
      if (code) throw new ExitCode(code);
    },
  };
}

const flag = (describe: string, extra: Options = {}): Options => ({ type: 'boolean', default: false, describe, ...extra });
/** run and check-migrations: which restore points the run takes (runner/snapshot-plan.ts); check-migrations prices them. */
const snapshotOption: Options = {
  choices: SNAPSHOT_CHOICES,
  default: 'auto',
  describe: 'restore points for `rollback`: hop-syncs (before each hop, the databases its syncs declare), first-hop (every database, before the first step), every-hop (first-hop, then every database of a project before its later hops), none; auto: hop-syncs on MySQL/MariaDB, first-hop on SQLite',
};
const text = (describe: string): Options => ({ type: 'string', requiresArg: true, describe });

const SPECS: readonly CommandSpec[] = [
  {
    command: 'check-migrations',
    describe: 'pre-flight report: where each database stands, what will run, what will stop it (changes nothing; exit 0 ok, 1 warnings, 2 failures)',
    flags: [...TARGET_FLAGS, 'offline', 'until', 'verify-envs'],
    overrides: {
      format: { choices: ['text', 'json', 'markdown'] },
      'state-dir': { describe: 'where the ledger is read from (never created) and free space is measured' },
      'verify-envs': { default: true, describe: 'hash every file of the cached envs against their manifests (--no-verify-envs: sizes, modes and mtimes only)' },
    },
    options: {
      'max-transaction-age': numeric('seconds after which an open transaction on a chain database is a Failure', 60),
      snapshot: { ...snapshotOption, describe: `the snapshot mode whose cost (bytes, time from earlier snapshots) the report predicts; ${String(snapshotOption.describe).replace(/^restore points for `rollback`: /, '')}` },
    },
    examples: [
      ['leapfrog check-migrations --chain nova.yaml --db mysql://db1', 'the pre-flight before the window: exit 0 all clear, 1 warnings, 2 failures'],
      ['leapfrog check-migrations --chain nova.yaml --db mysql://db1 --format markdown > preflight.md', 'for the change ticket'],
      ['leapfrog check-migrations --chain nova.yaml --db mysql://db1 --snapshot first-hop', 'what the cheaper restore points would cost, and what they give up'],
    ],
    load: () => import('./check-migrations.js'),
  },
  {
    command: 'plan',
    describe: 'show the steps still to run against the target, with their exact argv (changes nothing)',
    flags: [...TARGET_FLAGS, 'offline', 'until'],
    examples: [
      ['leapfrog plan --chain nova.yaml --db mysql://db1', 'every step still to run, with the argv it will run'],
      ['leapfrog plan --chain nova.yaml --db mysql://db1 --until zed --format json', 'the artifact a reviewer signs off, up to one release'],
    ],
    load: () => import('./plan.js'),
  },
  {
    command: 'rehearse',
    describe: 'restore a dump into a scratch server, run the chain there, audit row counts and report the timings',
    flags: ['chain', 'defaults-file', 'state-dir', 'cache-dir', 'envs', 'format', ...FETCH_FLAGS, 'parallel', 'color'],
    overrides: {
      'state-dir': { describe: 'the rehearsal gets STATE_DIR/rehearsals/<id>/ with its own ledger' },
      'defaults-file': { describe: 'MySQL option file for --server and --from (user, password, host, port, socket)' },
      parallel: { describe: 'run up to N projects at once (as the real run will)' },
    },
    options: {
      dump: { type: 'string', array: true, describe: 'SQL dump (plain or gzip; one per database or one with several), or SQLite .sqlite3 files' },
      from: text("copy the chain's databases from this live target instead (mysql://… copied server to server from one snapshot of them all, or sqlite:DIR); nothing there is changed"),
      server: text('rehearse on this existing server (mysql://user@host:port), every database renamed with --prefix'),
      prefix: text("with --server: prefix for the rehearsal's databases (default lfrXXXXXX_)"),
      mysqld: text('the server binary for the scratch server (default mariadbd or mysqld on PATH)'),
      keep: flag('leave the scratch server running (or the prefixed databases) afterwards'),
      'allow-network': flag("let the steps reach the network: by default a scratch or SQLite rehearsal's steps get a network namespace of their own, reaching the copy through its socket, so no URL in the restored data can lead them to production"),
      jobs: numeric('restore (or copy --from) over N connections', 4),
      'max-statement-bytes': numeric('refuse a dump whose one statement is longer than this (default 64 MiB; bounds memory)'),
      report: text('also write a self-contained HTML report here'),
    },
    examples: [
      ['leapfrog rehearse --chain nova.yaml --dump nova.sql.gz --report rehearsal.html', 'restore a dump into a throwaway server, run the chain there, time it'],
      ['leapfrog rehearse --chain nova.yaml --from mysql://db1 --server mysql://scratch', 'copy the live databases to a scratch server and rehearse there'],
    ],
    load: () => import('./rehearse.js'),
  },
  {
    command: 'run',
    describe: 'execute the plan, checkpointing after every hop',
    flags: [...TARGET_FLAGS, ...FETCH_FLAGS, 'until', 'parallel', 'wait-lock', 'force', 'color', 'verify-envs'],
    options: {
      'dry-run': flag('print the plan and run nothing (takes no lock)'),
      snapshot: snapshotOption,
      resume: flag('continue after a crashed or interrupted run (also the default behaviour); required when the dead run was on another host'),
      'accept-drift': flag('go on although a schema changed since its last checkpoint (recorded)'),
      'isolate-network': flag('run steps in a new network namespace (unshare); the target must be SQLite or a MySQL unix socket'),
    },
    examples: [
      ['leapfrog run --chain nova.yaml --db mysql://db1', 'run the window; run it again after any crash to resume'],
      ['leapfrog run --chain nova.yaml --db mysql://db1 --until zed --snapshot every-hop', 'stop after zed, with every database of a project snapshotted before each of its hops'],
      ['leapfrog run --chain nova.yaml --db mysql://db1 --snapshot none', 'no restore point at all: you have your own backup (check-migrations says what that saves)'],
    ],
    load: () => import('./run.js'),
  },
  {
    command: 'status',
    describe: 'where each database stands, the next hop, the steps pending, the last run and rehearsal (changes nothing; exit 0 at the end, 1 work pending, 2 the last run died or failed)',
    flags: [...TARGET_FLAGS, 'offline'],
    examples: [
      ['leapfrog status --chain nova.yaml --db mysql://db1', 'where each database stands and what the last run did'],
    ],
    load: () => import('./status.js'),
  },
  {
    command: 'ledger [action] [run]',
    describe: "history: `ledger runs` lists runs, `ledger show [RUN]` shows one run's steps, timings and checkpoints; `ledger export [FILE]` / `ledger import FILE` carry a rehearsal's evidence of what each step does to another host",
    positionals: {
      action: { choices: ['runs', 'show', 'export', 'import'], describe: 'runs (default), show, export or import' },
      run: { type: 'string', describe: 'run id for show (default: the latest); the file for export (default: stdout) and import' },
    },
    flags: ['state-dir', 'format', 'offline'],
    overrides: { offline: { describe: 'no network (the ledger never needs any)' } },
    examples: [
      ['leapfrog ledger runs', 'every run and rehearsal from this state directory'],
      ['leapfrog ledger show 12', 'one run\'s steps, timings, checkpoints and snapshots'],
    ],
    load: () => import('./ledger.js'),
  },
  {
    command: 'rollback',
    describe: 'restore the snapshots holding exactly a checkpoint (ids from `ledger show`), or --to start',
    flags: [...TARGET_FLAGS, 'offline', 'wait-lock', 'force'],
    options: {
      to: text('CHECKPOINT id, or start (before the first hop)'),
      'dry-run': flag('say which databases, snapshot files, sizes and versions would be restored, and what would be lost; change nothing'),
      yes: flag('roll back without asking; required when stdin is not a terminal (else refused, exit 2)'),
    },
    examples: [
      ['leapfrog rollback --chain nova.yaml --db mysql://db1 --to start --dry-run', 'what a rollback would restore, changing nothing'],
      ['leapfrog rollback --chain nova.yaml --db mysql://db1 --to start --yes', 'restore the snapshots taken before the first hop'],
    ],
    load: () => import('./rollback.js'),
  },
  {
    command: 'envs <action> [env]',
    describe: 'the env cache: list, verify, gc, provision, repair ENV; build writes a new env (tarball and env file)',
    positionals: {
      action: { choices: ['list', 'verify', 'gc', 'provision', 'repair', 'build'], describe: 'what to do' },
      env: { type: 'string', describe: 'repair: the env to unpack again from its tarball (a name of the --chain, or its sha256 prefix)' },
    },
    flags: ['envs', 'state-dir', 'cache-dir', 'format', ...FETCH_FLAGS, 'parallel'],
    overrides: { envs: { describe: "directory of env files (default: each chain's own)" }, parallel: { default: 4, describe: 'provision: downloads at once' } },
    options: {
      chain: { type: 'string', array: true, describe: 'a chain whose envs count (repeatable)' },
      chains: { type: 'string', array: true, describe: 'a directory of chain files that all count (repeatable)' },
      'older-than': numeric('gc: only entries unpacked more than DAYS ago (entries changed since unpacking always go)'),
      'dry-run': flag('gc: say what would go, remove nothing'),
      debian: text('build: a root filesystem of this Debian suite (bookworm, trixie…), with mmdebstrap'),
      packages: text('build --debian: packages to install, comma-separated'),
      mirror: text('build --debian: the Debian mirror (default http://deb.debian.org/debian)'),
      components: text('build --debian: archive components, comma-separated (default main)'),
      variant: text("build --debian: mmdebstrap's variant (default essential)"),
      updates: { type: 'boolean', describe: 'build --debian: add SUITE-updates and SUITE-security to a released suite (default; --no-updates: the suite alone, for a mirror that does not carry them)' },
      oci: text('build: an OCI image layout or docker save archive (directory or tar), its layers applied in order'),
      dir: text('build: pack this existing tree instead'),
      name: text('build: the env name (default: the suite, the archive or the directory name)'),
      out: text('build: where NAME.tar.zst (or .tar.gz) and NAME.yaml are written'),
      compression: { type: 'string', requiresArg: true, choices: ['zstd', 'gzip'], describe: 'build: the tarball\'s compression (default zstd: NAME.tar.zst; gzip: NAME.tar.gz)' },
    },
    examples: [
      ['leapfrog envs provision --chain nova.yaml', 'fetch and unpack every env the chain needs, before the window'],
      ['leapfrog envs verify', 'check the cached envs against their manifests'],
      ['leapfrog envs repair compute-kilo --chain nova.yaml', 'unpack a changed env again from its tarball'],
      ['leapfrog envs build --debian bookworm --packages python3-nova --out envs/', 'an env with Debian\'s nova, interpreter and libraries included'],
    ],
    load: () => import('./envs.js'),
  },
  {
    command: 'bundle <action> [file]',
    describe: 'one file carrying a chain, its env files and env tarballs into an air-gapped window: create, import',
    positionals: { action: { choices: ['create', 'import'] }, file: { type: 'string', describe: 'import: the bundle file' } },
    flags: ['envs', 'state-dir', 'cache-dir', 'format', ...FETCH_FLAGS],
    overrides: { envs: { describe: "create: directory of env files (default: the chain's own)" } },
    options: {
      chain: text('create: the chain to bundle'),
      output: { alias: 'o', ...text('create: the bundle file to write') },
      to: text('import: where the chain and env files go (default: STATE_DIR/bundles/NAME)'),
    },
    examples: [
      ['leapfrog bundle create --chain nova.yaml -o window.tar', 'one file with the chain and its envs, for an air-gapped host'],
      ['leapfrog bundle import window.tar', 'install it on that host'],
    ],
    load: () => import('./bundle.js'),
  },
];

export const COMMANDS: readonly CommandModule[] = SPECS.map(command);
