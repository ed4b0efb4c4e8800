import path from 'node:path';
import type { Argv, Options } from 'yargs';
import type { ContextSpec } from '../core/context.js';
import type { ProvisionOptions } from '../envs/store.js';
import { LeapfrogError } from '../errors.js';
import { cacheFlags, chooseStateDir, commandLine, stateFlags } from '../state-dir.js';

/**
 * Every flag of every command, declared once (graphile-migrate keeps one
 * settings parser; here one table). Commands pick groups: every command
 * that touches a target takes the target group, every command that may
 * provision envs the fetch group. Numbers are read as text and checked
 * here, so `--parallel two` says "--parallel two: …" rather than NaN, and
 * nothing is demanded through yargs, whose "Missing required argument"
 * would hide a mistyped flag (the unknown-flag check comes first, see
 * main.ts). This module imports no library beyond yargs' types: it is
 * loaded for `--help` and `--version`.
 */

// Kept in step with src/envs (DEFAULT_FETCH, DEFAULT_LIMITS); test/cli-options.test.ts checks.
export const FETCH_DEFAULTS = { connectTimeout: 15, idleTimeout: 60, downloadTimeout: 3600, retries: 5, maxEnvBytes: 8 * 1024 ** 3, maxEnvEntries: 500_000 };

const text = (describe: string, extra: Options = {}): Options => ({ type: 'string', requiresArg: true, describe, ...extra });
const flag = (describe: string): Options => ({ type: 'boolean', default: false, describe });
/** A number, left untyped for yargs (whose `type: 'number'` turns "two" into NaN) and checked by num(). */
export const numeric = (describe: string, value?: number): Options => ({ requiresArg: true, describe, ...(value === undefined ? {} : { default: value }) });

export const FLAGS = {
  chain: text('chain file (YAML or JSON)'),
  db: text("target: sqlite:DIR, mysql://user[:password]@host[:port] or mysql://user@localhost?socket=/path; repeat as --db NAME=URL for each of the chain's servers placed elsewhere", { array: true }),
  'defaults-file': text('MySQL option file: user, password, host, port, socket from its [client] group (the URL wins)'),
  'state-dir': text('ledger, logs, rendered configs, env cache (default: $LEAPFROG_STATE_DIR, else ./.leapfrog if it exists, else /var/lib/leapfrog for root, $XDG_STATE_HOME/leapfrog or ~/.local/state/leapfrog)'),
  'cache-dir': text('env cache (default: STATE_DIR/envs)'),
  envs: text("directory of env files (default: the chain's envs:, else ../envs next to the chain)"),
  format: { choices: ['text', 'json'], default: 'text', describe: 'output format' } as Options,
  until: text('stop after this release'),
  offline: flag('no network at all: envs must be cached (or come from local files)'),
  'connect-timeout': numeric("seconds to open a connection to an env's url", FETCH_DEFAULTS.connectTimeout),
  'idle-timeout': numeric('seconds without a byte before a download is retried', FETCH_DEFAULTS.idleTimeout),
  'download-timeout': numeric('seconds a whole download may take, retries and redirects included', FETCH_DEFAULTS.downloadTimeout),
  retries: numeric('retries per download (backoff doubles from 0.5 s)', FETCH_DEFAULTS.retries),
  'max-env-bytes': numeric('refuse a tarball larger than this, or unpacking to more (tar bomb)', FETCH_DEFAULTS.maxEnvBytes),
  'max-env-entries': numeric('refuse a tarball with more entries (tar bomb)', FETCH_DEFAULTS.maxEnvEntries),
  parallel: numeric('run up to N projects at once', 1),
  'wait-lock': numeric("wait up to SECONDS for another run on this target (or a dead run's last step) to finish; default: fail at once, naming it", 0),
  force: flag("go on even while other client sessions are connected to the chain's databases"),
  // yargs reads --no-color as color=false (boolean negation).
  color: { type: 'boolean', default: true, describe: 'colour the progress on a terminal; --no-color (or NO_COLOR set) turns colour off, the marks stay' } as Options,
  'verify-envs': flag('hash every file of the envs the run uses against their manifests before the first step (default: sizes, modes and mtimes only)'),
} satisfies Record<string, Options>;

export type FlagName = keyof typeof FLAGS;

/** Declare flags on a command, by name, with an optional override of the description or default. */
export function withFlags<T>(y: Argv<T>, names: readonly FlagName[], overrides: Partial<Record<FlagName, Options>> = {}): Argv<T> {
  let out = y;
  for (const n of names) out = out.option(n, { ...FLAGS[n], ...overrides[n] });
  // --help shows the shared flags by what they are about; a command's own stay under "Options:".
  for (const [title, group] of Object.entries(GROUPS)) {
    const here = group.filter((n) => names.includes(n));
    if (here.length > 0) out = out.group(here, title);
  }
  return out;
}

const GROUPS: Record<string, readonly FlagName[]> = {
  'Target:': ['chain', 'db', 'defaults-file'],
  'State:': ['state-dir', 'cache-dir', 'envs'],
  'Downloads:': ['offline', 'connect-timeout', 'idle-timeout', 'download-timeout', 'retries', 'max-env-bytes', 'max-env-entries'],
};

export const TARGET_FLAGS: readonly FlagName[] = ['chain', 'db', 'defaults-file', 'state-dir', 'cache-dir', 'envs', 'format'];
export const FETCH_FLAGS: readonly FlagName[] = ['offline', 'connect-timeout', 'idle-timeout', 'download-timeout', 'retries', 'max-env-bytes', 'max-env-entries'];

export type Args = Record<string, unknown>;

/** A flag's value as text, or undefined when it was not given (and has no default). */
export function str(args: Args, name: string): string | undefined {
  const v = args[name];
  if (v === undefined) return undefined;
  if (Array.isArray(v)) return str({ [name]: v[v.length - 1] }, name);
  return String(v);
}

/** Every value of a repeatable flag, in order. */
export function list(args: Args, name: string): string[] {
  const v = args[name];
  return v === undefined ? [] : (Array.isArray(v) ? v : [v]).map(String);
}

export function required(args: Args, name: string, what: string): string {
  const v = str(args, name);
  if (v === undefined || v === '') throw new LeapfrogError('input', `--${name} is required: ${what} (see leapfrog ${String((args._ as unknown[] | undefined)?.[0] ?? '')} --help)`);
  return v;
}

export function requiredList(args: Args, name: string, what: string): string[] {
  const v = list(args, name);
  if (v.length === 0) required(args, name, what);
  return v;
}

/** A number flag, checked: `whole`, at least `min`. The message names the flag and the value given. */
export function num(args: Args, name: string, o: { whole?: boolean; min?: number; above?: number; what?: string; fallback?: number } = {}): number {
  if (str(args, name) === undefined && o.fallback !== undefined) return o.fallback;
  const raw = str(args, name) ?? '';
  const v = raw.trim() === '' ? NaN : Number(raw);
  const bad = !Number.isFinite(v) || (o.whole === true && !Number.isInteger(v)) || (o.min !== undefined && v < o.min) || (o.above !== undefined && v <= o.above);
  if (bad) {
    const bound = o.min !== undefined ? `, ${o.min} or more` : o.above !== undefined ? `, greater than ${o.above}` : '';
    const rule = `${o.whole ? 'a whole number' : 'a number'}${o.what ? ` ${o.what}` : ''}${bound}`;
    throw new LeapfrogError('input', `--${name} ${raw === '' ? '(no value)' : raw}: must be ${rule}`);
  }
  return v;
}

export function optionalNum(args: Args, name: string, o: Parameters<typeof num>[2] = {}): number | undefined {
  return str(args, name) === undefined ? undefined : num(args, name, o);
}

export const bool = (args: Args, name: string): boolean => {
  const v = args[name];
  return (Array.isArray(v) ? v[v.length - 1] : v) === true;
};

/** The fetch group (its defaults for commands that do not take it), as the envs module takes it; `chains` names what `envs provision` needs for the --offline hint. */
export function provisionFrom(args: Args, chains: readonly string[]): ProvisionOptions {
  return {
    offline: bool(args, 'offline'),
    provisionHint: commandLine(['envs', 'provision', ...chains.flatMap((c) => ['--chain', path.resolve(c)]), ...repeatState(args)]),
    repairHint: (env) => commandLine(['envs', 'repair', env, ...chains.flatMap((c) => ['--chain', path.resolve(c)]), ...repeatState(args)]),
    verify: bool(args, 'verify-envs') ? 'hash' : 'stat',
    fetch: {
      connectTimeoutMs: num(args, 'connect-timeout', { above: 0, what: 'of seconds', fallback: FETCH_DEFAULTS.connectTimeout }) * 1000,
      idleTimeoutMs: num(args, 'idle-timeout', { above: 0, what: 'of seconds', fallback: FETCH_DEFAULTS.idleTimeout }) * 1000,
      deadlineMs: num(args, 'download-timeout', { above: 0, what: 'of seconds', fallback: FETCH_DEFAULTS.downloadTimeout }) * 1000,
      retries: num(args, 'retries', { whole: true, min: 0, fallback: FETCH_DEFAULTS.retries }),
    },
    limits: {
      maxBytes: num(args, 'max-env-bytes', { whole: true, min: 1, fallback: FETCH_DEFAULTS.maxEnvBytes }),
      maxEntries: num(args, 'max-env-entries', { whole: true, min: 1, fallback: FETCH_DEFAULTS.maxEnvEntries }),
    },
  };
}

/** --state-dir (unless the default), --cache-dir and --envs, for a hint's command. */
function repeatState(args: Args): string[] {
  const envs = str(args, 'envs');
  return [...(envs !== undefined ? ['--envs', path.resolve(envs)] : []), ...stateFlags(stateDirOf(args)), ...cacheFlags(stateDirOf(args), str(args, 'cache-dir'))];
}

/** The target group (with the fetch group): what loadContext takes. */
export function contextFrom(args: Args): ContextSpec {
  const chain = required(args, 'chain', 'the chain file');
  return {
    chain,
    db: requiredList(args, 'db', 'the target (sqlite:DIR or mysql://user@host:port)'),
    defaultsFile: str(args, 'defaults-file'),
    envDir: str(args, 'envs'),
    stateDir: stateDirOf(args),
    cacheDir: str(args, 'cache-dir'),
    provision: provisionFrom(args, [chain]),
  };
}

export function cacheDirOf(args: Args): string {
  const cache = str(args, 'cache-dir');
  return cache ? path.resolve(cache) : path.join(stateDirOf(args), 'envs');
}

/**
 * The state directory, absolute: --state-dir, LEAPFROG_STATE_DIR, an
 * existing ./.leapfrog (said on stderr once), or the default (src/state-dir.ts).
 * commands.ts resolves it before a command's handler runs, so handlers
 * find it already resolved in args.
 */
export function stateDirOf(args: Args): string {
  return chooseStateDir(str(args, 'state-dir')).dir;
}

export type Format = 'text' | 'json' | 'markdown';
export const formatOf = (args: Args): Format => (str(args, 'format') ?? 'text') as Format;
