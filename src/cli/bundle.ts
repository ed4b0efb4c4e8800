import path from 'node:path';
import { loadChain, loadChainEnvs } from '../chain/load.js';
import { createBundle, importBundle } from '../envs/bundle.js';
import { LeapfrogError } from '../errors.js';
import { fetchArgs, provisionOptions, type FetchArgs } from './context.js';
import type { Args } from './options.js';
import { cacheDirOf, reportRedirect, withInterrupt } from './envs.js';
import type { Io } from './io.js';
import { cacheFlags, commandLine, stateFlags } from '../state-dir.js';

/**
 * `leapfrog bundle create --chain C -o FILE` and `leapfrog bundle import
 * FILE`: one file that carries a chain, its env files and every env tarball
 * into an air-gapped window.
 */

export interface BundleArgs extends FetchArgs {
  action: 'create' | 'import';
  file: string | undefined;
  chain: string | undefined;
  envs: string | undefined;
  output: string | undefined;
  to: string | undefined;
  'state-dir': string;
  'cache-dir': string | undefined;
  format: 'text' | 'json';
}

export async function bundleCommand(args: BundleArgs, io: Io): Promise<void> {
  if (args.action === 'create') {
    if (!args.chain) throw new LeapfrogError('input', 'bundle create needs --chain FILE: the chain to carry');
    if (!args.output) throw new LeapfrogError('input', 'bundle create needs -o FILE: where to write the bundle');
    const chain = loadChain(args.chain, { envDir: args.envs });
    const envs = loadChainEnvs(chain);
    const made = await withInterrupt(io, (signal) => createBundle(chain, envs, args.output!, { ...provisionOptions(args, [args.chain!]), onRedirect: reportRedirect(io), signal, cacheDir: cacheDirOf(args) }));
    io.out(args.format === 'json' ? JSON.stringify({ format: 'leapfrog.bundle.create/v1', ...made }, null, 2) : `Bundle ${made.file}: chain ${made.chain} with ${made.envs} env tarballs (${made.fromCache} from the cache). On the offline host: leapfrog bundle import ${path.basename(made.file)}`);
    return;
  }
  if (!args.file) throw new LeapfrogError('input', 'bundle import needs the bundle FILE');
  const cacheDir = cacheDirOf(args);
  const to = args.to ?? path.join(path.resolve(args['state-dir']), 'bundles', path.basename(args.file).replace(/\.(tar|tgz|tar\.gz|bundle)$/, ''));
  const got = await withInterrupt(io, (signal) => importBundle(args.file!, to, cacheDir, { ...provisionOptions(args, []), offline: true, signal }));
  if (args.format === 'json') {
    io.out(JSON.stringify({ format: 'leapfrog.bundle.import/v1', chain: got.chain, chainFile: got.chainFile, dir: got.dir, cache: cacheDir, envs: got.envs.map((e) => ({ env: e.def.name, sha256: e.sha256, root: e.root })) }, null, 2));
    return;
  }
  // The hint names this state directory and cache unless they are the defaults: pasted in another shell, it must find these envs.
  const next = commandLine(['run', '--chain', got.chainFile, '--db', 'URL', '--offline', ...stateFlags(args['state-dir']), ...cacheFlags(args['state-dir'], args['cache-dir'])]);
  io.out(`Chain ${got.chain} installed: ${got.chainFile}\n${got.envs.length} envs verified and unpacked in ${cacheDir}.\nRun it with: ${next}`);
}

/** The command line's flags, checked, as bundleCommand takes them. */
export function handler(args: Args, io: Io): Promise<void> {
  return bundleCommand({ ...(args as unknown as BundleArgs), ...fetchArgs(args) }, io);
}
