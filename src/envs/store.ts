import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { mkdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { LeapfrogError } from '../errors.js';
import type { EnvDef } from '../chain/types.js';
import { DEFAULT_LIMITS, MANIFEST, safeExtract, UnsafeTarball, type ExtractLimits } from './extract.js';
import { fetchToFile, showUrl, type FetchOptions, type FetchProgress } from './fetch.js';

/**
 * The content-addressed env cache: an env's tarball is unpacked under
 * `<cache>/<sha256>/` and never changes afterwards. Unpacking goes to a
 * temporary directory beside it and is renamed into place only once the
 * checksum matched, the entries passed the safety checks and the manifest of
 * file hashes (`<cache>/<sha256>/.leapfrog-manifest.json`, for `envs
 * verify`) is written, so a crash or a bad tarball never leaves a
 * half-filled entry under a real checksum.
 *
 * Verify before unpacking: tar only ever reads bytes whose checksum matched,
 * so a truncated download is reported as what it is (a checksum mismatch) and
 * a tarball nobody pinned never reaches the extractor. The cost is a second
 * read of the tarball, kept small: a download is hashed while it is written
 * to the spool file (one pass over the network bytes, no separate hashing
 * pass), and a local file is hashed where it lies and unpacked from there,
 * never copied. A local file could change between hashing and unpacking;
 * the manifest then records what was actually unpacked, and the window
 * between the two is that of one provisioning on the operator's own disk.
 */

export interface ProvisionedEnv {
  def: EnvDef;
  /** The unpacked tree. */
  root: string;
  sha256: string;
  /** True when it was already in the cache. */
  cached: boolean;
}

export function envRoot(cacheDir: string, sha256: string): string {
  return path.join(cacheDir, sha256);
}

/** A tarball on local disk and the sha256 of its bytes, hashed as they were read or written. */
export interface TarballBytes {
  file: string;
  sha256: string;
}

/**
 * Where an env's tarball comes from: given a spool path it may write to,
 * it returns a local file and that file's sha256.
 */
export type TarballSource = (env: EnvDef, spool: string, options: ProvisionOptions) => Promise<TarballBytes>;

export interface ProvisionOptions {
  source?: TarballSource | undefined;
  fetch?: Partial<FetchOptions> | undefined;
  limits?: ExtractLimits | undefined;
  /** No network at all: a url source not already cached is an error. */
  offline?: boolean | undefined;
  /** The command that provisions this env ahead of time, for the offline error. */
  provisionHint?: string | undefined;
  onProgress?: ((env: string, p: FetchProgress) => void) | undefined;
}

export async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

export const defaultSource: TarballSource = async (env, spool, options) => {
  if (env.source.kind === 'file') {
    try {
      await stat(env.source.location);
    } catch {
      throw new LeapfrogError('input', `env ${env.name} (${env.file}): source.file ${env.source.location} does not exist; build or copy the tarball there`);
    }
    return { file: env.source.location, sha256: await sha256File(env.source.location) };
  }
  if (options.offline) {
    throw new LeapfrogError(
      'input',
      `env ${env.name} is not in the cache and --offline forbids downloading ${showUrl(env.source.location)}; provision it before the window with \`${options.provisionHint ?? 'leapfrog envs provision --chain CHAIN'}\` (or import a bundle)`,
    );
  }
  const fetched = await fetchToFile(env.source.location, spool, {
    ...options.fetch,
    onProgress: options.onProgress ? (p) => options.onProgress!(env.name, p) : undefined,
  });
  return { file: spool, sha256: fetched.sha256 };
};

/** The env's tree when it is cached; never touches the source. */
export function cachedEnv(env: EnvDef, cacheDir: string): ProvisionedEnv | undefined {
  const root = envRoot(cacheDir, env.source.sha256);
  return existsSync(root) ? { def: env, root, sha256: env.source.sha256, cached: true } : undefined;
}

export async function provisionEnv(env: EnvDef, cacheDir: string, options: ProvisionOptions = {}): Promise<ProvisionedEnv> {
  const hit = cachedEnv(env, cacheDir);
  if (hit) return hit;
  const root = envRoot(cacheDir, env.source.sha256);

  const tmpBase = path.join(cacheDir, '.tmp');
  await mkdir(tmpBase, { recursive: true, mode: 0o700 });
  const tmp = path.join(tmpBase, `${env.source.sha256.slice(0, 12)}-${process.pid}-${randomBytes(4).toString('hex')}`);
  const spool = `${tmp}.tar`;
  await mkdir(tmp, { mode: 0o700 });
  const shown = env.source.kind === 'url' ? showUrl(env.source.location) : env.source.location;
  try {
    let bytes: TarballBytes;
    try {
      bytes = await (options.source ?? defaultSource)(env, spool, options);
    } catch (err) {
      if (err instanceof LeapfrogError) throw err;
      throw new LeapfrogError('input', `env ${env.name}: cannot read ${shown} (${(err as Error).message})`, { cause: err });
    }
    if (bytes.sha256 !== env.source.sha256) {
      throw new LeapfrogError(
        'input',
        `env ${env.name}: checksum mismatch for ${shown}: expected sha256 ${env.source.sha256}, got ${bytes.sha256}. The file is not the one ${env.file} declares; nothing was cached.`,
      );
    }
    try {
      const files = await safeExtract(bytes.file, tmp, options.limits ?? DEFAULT_LIMITS);
      await writeFile(path.join(tmp, MANIFEST), JSON.stringify({ sha256: env.source.sha256, env: env.name, source: shown, unpackedAt: new Date().toISOString(), files }), { mode: 0o444 });
    } catch (err) {
      if (err instanceof UnsafeTarball) {
        throw new LeapfrogError('input', `env ${env.name}: refused to unpack ${shown}: ${err.message}. Nothing was cached; rebuild the tarball without it`, { cause: err });
      }
      throw new LeapfrogError('input', `env ${env.name}: ${shown} is not a readable tar.gz (${(err as Error).message})`, { cause: err });
    }
    try {
      await rename(tmp, root);
    } catch (err) {
      // Another process unpacked the same content first: theirs is as good as ours.
      if (!existsSync(root)) throw err;
    }
    return { def: env, root, sha256: env.source.sha256, cached: false };
  } finally {
    // tar may still be finishing writes when it reports an error: retry on
    // ENOTEMPTY rather than let the cleanup's error hide the real one.
    await Promise.all(
      [tmp, spool].map((p) => rm(p, { recursive: true, force: true, maxRetries: 10, retryDelay: 50 }).catch(() => undefined)),
    );
  }
}
