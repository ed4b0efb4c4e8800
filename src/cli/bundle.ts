import path from 'node:path';
import type { CommandModule } from 'yargs';
import { loadChain, loadChainEnvs } from '../chain/load.js';
import { createBundle, importBundle } from '../envs/bundle.js';
import { LeapfrogError } from '../errors.js';
import { fetchOptions, provisionOptions, type FetchArgs } from './context.js';
import { cacheDirOf, reportRedirect, withInterrupt } from './envs.js';
import { processIo, type Io } from './io.js';

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

export async function bundleCommand(args: BundleArgs, io: Io = processIo): Promise<void> {
  if (args.action === 'create') {
    if (!args.chain) throw new LeapfrogError('input', 'bundle create needs --chain FILE: the chain to carry');
    if (!args.output) throw new LeapfrogError('input', 'bundle create needs -o FILE: where to write the bundle');
    const chain = loadChain(args.chain, { envDir: args.envs });
    const envs = loadChainEnvs(chain);
    const made = await withInterrupt(io, (signal) => createBundle(chain, envs, args.output!, { ...provisionOptions(args, [args.chain!]), onRedirect: reportRedirect(io), signal }));
    io.out(args.format === 'json' ? JSON.stringify({ format: 'leapfrog.bundle.create/v1', ...made }, null, 2) : `Bundle ${made.file}: chain ${made.chain} with ${made.envs} env tarballs. On the offline host: leapfrog bundle import ${path.basename(made.file)}`);
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
  io.out(`Chain ${got.chain} installed: ${got.chainFile}\n${got.envs.length} envs verified and unpacked in ${cacheDir}.\nRun it with: leapfrog run --chain ${got.chainFile} --db URL --offline${args['cache-dir'] ? ` --cache-dir ${cacheDir}` : ''}`);
}

export const bundleModule: CommandModule<object, BundleArgs> = {
  command: 'bundle <action> [file]',
  describe: 'carry a chain offline: `bundle create --chain C -o FILE`, `bundle import FILE` (fills the env cache, installs the chain)',
  builder: (y) =>
    fetchOptions(y)
      .positional('action', { choices: ['create', 'import'] as const })
      .positional('file', { type: 'string', describe: 'import: the bundle file' })
      .option('chain', { type: 'string', describe: 'create: the chain to bundle' })
      .option('envs', { type: 'string', describe: 'create: directory of env files (default: the chain\'s own)' })
      .option('output', { alias: 'o', type: 'string', describe: 'create: the bundle file to write' })
      .option('to', { type: 'string', describe: 'import: where the chain and env files go (default: STATE_DIR/bundles/NAME)' })
      .option('state-dir', { type: 'string', default: './.leapfrog' })
      .option('cache-dir', { type: 'string', describe: 'env cache (default: STATE_DIR/envs)' })
      .option('format', { choices: ['text', 'json'] as const, default: 'text' as const }) as never,
  handler: (args) => bundleCommand(args),
};
