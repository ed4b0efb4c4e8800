import { loadChain, loadChainEnvs } from '../chain/load.js';
import type { Chain, EnvDef } from '../chain/types.js';
import { readOptionFile } from '../database/option-file.js';
import { parseTargetUrl, type Target } from '../database/url.js';
import type { ProvisionOptions } from '../envs/store.js';
import { layout, type Layout } from './layout.js';

/**
 * What every command of the core works on: the chain and its envs, the
 * target, where state lives, and how envs are provisioned. Built once from
 * the command line's options (src/cli/options.ts) by `loadContext`.
 */
export interface CoreContext {
  chain: Chain;
  envs: ReadonlyMap<string, EnvDef>;
  target: Target;
  layout: Layout;
  provision: ProvisionOptions;
}

export interface TargetSpec {
  /** --db */
  db: string;
  /** --defaults-file */
  defaultsFile: string | undefined;
}

export interface ContextSpec extends TargetSpec {
  chain: string;
  envDir: string | undefined;
  stateDir: string;
  cacheDir: string | undefined;
  provision: ProvisionOptions;
}

/** --db, LEAPFROG_DB_PASSWORD and --defaults-file, as one target. */
export function targetFrom(spec: TargetSpec): Target {
  const optionFile = spec.defaultsFile === undefined ? {} : readOptionFile(spec.defaultsFile);
  return parseTargetUrl(spec.db, process.env.LEAPFROG_DB_PASSWORD || undefined, optionFile);
}

export function loadContext(spec: ContextSpec): CoreContext {
  const chain = loadChain(spec.chain, { envDir: spec.envDir });
  const envs = loadChainEnvs(chain);
  const target = targetFrom(spec);
  return { chain, envs, target, layout: layout(spec.stateDir, spec.cacheDir, chain, target), provision: spec.provision };
}
