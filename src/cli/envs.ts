import path from 'node:path';
import { buildCommand } from './envs-build.js';
import { usage } from '../envs/cache.js';
import { withStopSignals } from '../core/signals.js';
import { LeapfrogError } from '../errors.js';
import { fetchArgs, loadChains, type ChainSet, type FetchArgs } from './context.js';
import { num, optionalNum, type Args } from './options.js';
import type { Io } from './io.js';

/**
 * `leapfrog envs list|verify|gc|provision|repair`: fill and check the env
 * cache ahead of an offline window, and put a changed env right.
 */

export interface EnvsArgs extends FetchArgs {
  action: 'list' | 'verify' | 'gc' | 'provision' | 'build' | 'repair';
  debian?: string | undefined;
  packages?: string | undefined;
  mirror?: string | undefined;
  components?: string | undefined;
  variant?: string | undefined;
  updates?: boolean | undefined;
  dir?: string | undefined;
  oci?: string | undefined;
  name?: string | undefined;
  /** repair: the env to unpack again. */
  env?: string | undefined;
  out?: string | undefined;
  compression?: 'zstd' | 'gzip' | undefined;
  chain: string[] | undefined;
  chains: string[] | undefined;
  envs: string | undefined;
  'state-dir': string;
  'cache-dir': string | undefined;
  format: 'text' | 'json';
  parallel: number;
  'older-than': number | undefined;
  'dry-run': boolean;
}

/** The one stop policy (core/signals.ts) for provisioning: a signal removes what was half-downloaded or half-unpacked. */
export function withInterrupt<T>(io: Io, cb: (signal: AbortSignal) => Promise<T>): Promise<T> {
  return withStopSignals((text) => io.err(`\n${text}; removing what was half-downloaded or half-unpacked…`), cb);
}

/** A redirect followed while downloading an env, said on stderr (never with credentials). */
export const reportRedirect = (io: Io) => (env: string, from: string, to: string, status: number) => io.err(`env ${env}: ${from} redirected (HTTP ${status}) to ${to}`);

export function cacheDirOf(args: { 'state-dir': string; 'cache-dir': string | undefined }): string {
  return args['cache-dir'] ? path.resolve(args['cache-dir']) : path.join(path.resolve(args['state-dir']), 'envs');
}

function chainsOf(args: EnvsArgs): ChainSet[] | undefined {
  const files = args.chain ?? [];
  const dirs = args.chains ?? [];
  if (files.length === 0 && dirs.length === 0) return undefined;
  return loadChains(files, dirs, args.envs);
}

/** What every envs action starts from. */
export interface EnvsContext {
  args: EnvsArgs;
  cacheDir: string;
  chains: ChainSet[] | undefined;
  /** sha256 → the chains:envs that use it, when chains were given. */
  used: ReturnType<typeof usage> | undefined;
  json: boolean;
}

export async function envsCommand(args: EnvsArgs, io: Io): Promise<void> {
  if (args.action === 'build') return buildCommand(args, io);
  const chains = chainsOf(args);
  const ctx: EnvsContext = {
    args,
    cacheDir: cacheDirOf(args),
    chains,
    used: chains ? usage(chains.map((c) => ({ chain: c.chain.name, envs: c.envs }))) : undefined,
    json: args.format === 'json',
  };
  switch (args.action) {
    case 'list':
      return (await import('./envs-cache.js')).listEnvs(ctx, io);
    case 'verify':
      return (await import('./envs-cache.js')).verifyEnvs(ctx, io);
    case 'gc':
      return (await import('./envs-cache.js')).gcEnvs(ctx, io);
    case 'repair':
      return (await import('./envs-cache.js')).repairEnvs(ctx, io);
    case 'provision':
      return (await import('./envs-provision.js')).provisionEnvs(ctx, io);
  }
}

/** The command line's flags, checked, as envsCommand takes them. */
export function handler(args: Args, io: Io): Promise<void> {
  return envsCommand(
    {
      ...(args as unknown as EnvsArgs),
      ...fetchArgs(args),
      parallel: num(args, 'parallel', { whole: true, min: 1 }),
      'older-than': optionalNum(args, 'older-than', { min: 0, what: 'of days' }),
    },
    io,
  );
}
