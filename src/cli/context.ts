import type { Argv } from 'yargs';
import { loadChain, loadChainEnvs } from '../chain/load.js';
import type { Chain, EnvDef } from '../chain/types.js';
import { layout, type Layout } from '../runner/layout.js';
import { readOptionFile } from '../target/option-file.js';
import { parseTargetUrl, type Target } from '../target/url.js';

/** Flags shared by the commands that work on a chain and a target. */
export interface CommonArgs {
  chain: string;
  db: string;
  'state-dir': string;
  'cache-dir': string | undefined;
  envs: string | undefined;
  'defaults-file': string | undefined;
  format: 'text' | 'json';
}

export function commonOptions<T>(y: Argv<T>) {
  return y
    .option('chain', { type: 'string', demandOption: true, describe: 'chain file (YAML or JSON)' })
    .option('db', { type: 'string', demandOption: true, describe: 'target: sqlite:DIR, mysql://user[:password]@host[:port] or mysql://user@localhost?socket=/path' })
    .option('defaults-file', { type: 'string', describe: 'MySQL option file: user, password, host, port, socket from its [client] group (the URL wins)' })
    .option('state-dir', { type: 'string', default: './.leapfrog', describe: 'ledger, logs, rendered configs, env cache' })
    .option('cache-dir', { type: 'string', describe: 'env cache (default: STATE_DIR/envs)' })
    .option('envs', { type: 'string', describe: 'directory of env files (default: the chain\'s envs:, else ../envs next to the chain)' })
    .option('format', { choices: ['text', 'json'] as const, default: 'text' as const, describe: 'output format' });
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
