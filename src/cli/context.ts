import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import type { Argv } from 'yargs';
import { loadChain, loadChainEnvs } from '../chain/load.js';
import type { Chain, EnvDef } from '../chain/types.js';
import { DEFAULT_LIMITS } from '../envs/extract.js';
import { DEFAULT_FETCH } from '../envs/fetch.js';
import type { ProvisionOptions } from '../envs/store.js';
import { LeapfrogError } from '../errors.js';
import { layout, type Layout } from '../runner/layout.js';
import { readOptionFile } from '../database/option-file.js';
import { parseTargetUrl, type Target } from '../database/url.js';

/** Flags every command that may provision envs understands. */
export interface FetchArgs {
  offline: boolean;
  'connect-timeout': number;
  'idle-timeout': number;
  'download-timeout': number;
  retries: number;
  'max-env-bytes': number;
  'max-env-entries': number;
}

/** Flags shared by the commands that work on a chain and a target. */
export interface CommonArgs extends FetchArgs {
  chain: string;
  db: string;
  'state-dir': string;
  'cache-dir': string | undefined;
  envs: string | undefined;
  'defaults-file': string | undefined;
  format: 'text' | 'json';
}

export function fetchOptions<T>(y: Argv<T>) {
  return y
    .option('offline', { type: 'boolean', default: false, describe: 'no network at all: envs must be cached (or come from local files)' })
    .option('connect-timeout', { type: 'number', default: DEFAULT_FETCH.connectTimeoutMs / 1000, describe: 'seconds to open a connection to an env\'s url' })
    .option('idle-timeout', { type: 'number', default: DEFAULT_FETCH.idleTimeoutMs / 1000, describe: 'seconds without a byte before a download is retried' })
    .option('download-timeout', { type: 'number', default: DEFAULT_FETCH.deadlineMs / 1000, describe: 'seconds a whole download may take, retries and redirects included' })
    .option('retries', { type: 'number', default: DEFAULT_FETCH.retries, describe: 'retries per download (backoff doubles from 0.5 s)' })
    .option('max-env-bytes', { type: 'number', default: DEFAULT_LIMITS.maxBytes, describe: 'refuse a tarball larger than this, or unpacking to more (tar bomb)' })
    .option('max-env-entries', { type: 'number', default: DEFAULT_LIMITS.maxEntries, describe: 'refuse a tarball with more entries (tar bomb)' });
}

export function commonOptions<T>(y: Argv<T>) {
  return fetchOptions(y)
    .option('chain', { type: 'string', demandOption: true, describe: 'chain file (YAML or JSON)' })
    .option('db', { type: 'string', demandOption: true, describe: 'target: sqlite:DIR, mysql://user[:password]@host[:port] or mysql://user@localhost?socket=/path' })
    .option('defaults-file', { type: 'string', describe: 'MySQL option file: user, password, host, port, socket from its [client] group (the URL wins)' })
    .option('state-dir', { type: 'string', default: './.leapfrog', describe: 'ledger, logs, rendered configs, env cache' })
    .option('cache-dir', { type: 'string', describe: 'env cache (default: STATE_DIR/envs)' })
    .option('envs', { type: 'string', describe: 'directory of env files (default: the chain\'s envs:, else ../envs next to the chain)' })
    .option('format', { choices: ['text', 'json'] as const, default: 'text' as const, describe: 'output format' });
}

/** The provisioning options the fetch flags describe; `chains` names what `envs provision` needs for the offline hint. */
export function provisionOptions(args: FetchArgs, chains: readonly string[]): ProvisionOptions {
  const positive = (flag: keyof FetchArgs, v: number, whole: boolean) => {
    if (!(v > 0) || (whole && !Number.isInteger(v))) throw new LeapfrogError('input', `--${flag} ${v}: must be a ${whole ? 'whole ' : ''}number greater than 0`);
    return v;
  };
  if (!Number.isInteger(args.retries) || args.retries < 0) throw new LeapfrogError('input', `--retries ${args.retries}: must be a whole number, 0 or more`);
  return {
    offline: args.offline,
    provisionHint: `leapfrog envs provision ${chains.map((c) => `--chain ${c}`).join(' ')}`,
    fetch: {
      connectTimeoutMs: positive('connect-timeout', args['connect-timeout'], false) * 1000,
      idleTimeoutMs: positive('idle-timeout', args['idle-timeout'], false) * 1000,
      deadlineMs: positive('download-timeout', args['download-timeout'], false) * 1000,
      retries: args.retries,
    },
    limits: { maxBytes: positive('max-env-bytes', args['max-env-bytes'], true), maxEntries: positive('max-env-entries', args['max-env-entries'], true) },
  };
}

export interface Loaded {
  chain: Chain;
  envs: Map<string, EnvDef>;
  target: Target;
  layout: Layout;
}

export function load(args: CommonArgs): Loaded {
  const chain = loadChain(args.chain, { envDir: args.envs });
  const envs = loadChainEnvs(chain);
  const target = targetFrom(args);
  return { chain, envs, target, layout: layout(args['state-dir'], args['cache-dir'], chain, target) };
}

/** --db, LEAPFROG_DB_PASSWORD and --defaults-file, as one target. */
export function targetFrom(args: { db: string; 'defaults-file'?: string | undefined }): Target {
  const optionFile = args['defaults-file'] === undefined ? {} : readOptionFile(args['defaults-file']);
  return parseTargetUrl(args.db, process.env.LEAPFROG_DB_PASSWORD || undefined, optionFile);
}

export interface ChainSet {
  chain: Chain;
  envs: Map<string, EnvDef>;
}

/** Chains named by --chain (files) and --chains (every .yaml/.yml/.json in a directory), each with its envs. */
export function loadChains(files: readonly string[], dirs: readonly string[], envDir: string | undefined): ChainSet[] {
  const all = [...files];
  for (const d of dirs) {
    if (!existsSync(d) || !statSync(d).isDirectory()) throw new LeapfrogError('input', `--chains ${d}: not a directory of chain files`);
    for (const f of readdirSync(d).sort()) if (/\.(ya?ml|json)$/.test(f)) all.push(path.join(d, f));
  }
  return all.map((f) => {
    const chain = loadChain(f, { envDir });
    return { chain, envs: loadChainEnvs(chain) };
  });
}
