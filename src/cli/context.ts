import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { loadChain, loadChainEnvs } from '../chain/load.js';
import type { Chain, EnvDef } from '../chain/types.js';
import type { ProvisionOptions } from '../envs/store.js';
import { LeapfrogError } from '../errors.js';
import { num, bool, provisionFrom, type Args } from './options.js';

/** Flags every command that may provision envs understands, checked (numbers parsed). */
export interface FetchArgs {
  offline: boolean;
  'connect-timeout': number;
  'idle-timeout': number;
  retries: number;
  'download-timeout': number;
  'max-env-bytes': number;
  'max-env-entries': number;
}

export function fetchArgs(args: Args): FetchArgs {
  return {
    offline: bool(args, 'offline'),
    'connect-timeout': num(args, 'connect-timeout', { above: 0, what: 'of seconds' }),
    'idle-timeout': num(args, 'idle-timeout', { above: 0, what: 'of seconds' }),
    retries: num(args, 'retries', { whole: true, min: 0 }),
    'download-timeout': num(args, 'download-timeout', { above: 0, what: 'of seconds' }),
    'max-env-bytes': num(args, 'max-env-bytes', { whole: true, min: 1 }),
    'max-env-entries': num(args, 'max-env-entries', { whole: true, min: 1 }),
  };
}

/** The provisioning options the fetch flags describe; `chains` names what `envs provision` needs for the offline hint. */
export function provisionOptions(args: FetchArgs, chains: readonly string[]): ProvisionOptions {
  return provisionFrom(args as unknown as Args, chains);
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
