import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { LeapfrogError } from '../errors.js';
import type { EnvDef } from '../chain/types.js';
import { BadArchive, DEFAULT_LIMITS, MissingTool, safeExtract, UnsafeTarball, type ExtractLimits } from './extract.js';
import { fetchToFile, showUrl, type FetchOptions, type FetchProgress } from './fetch.js';
import { withMtimes, writeManifest } from './manifest.js';
import { spoolCopy, TooBig } from './spool.js';
import { makeDirs } from '../dirs.js';

/**
 * The content-addressed env cache: an env's tarball is unpacked under
 * `<cache>/<sha256>/` and never changes afterwards. Unpacking goes to a
 * temporary directory beside it and is renamed into place only once the
 * checksum matched, the entries passed the safety checks and the manifest of
 * file hashes (`<cache>/<sha256>/.leapfrog-manifest.json`, for `envs
 * verify`) is written, so a crash or a bad tarball never leaves a
 * half-filled entry under a real checksum.
 *
 * Read once, verify, then unpack: every source, a download or a local file,
 * is copied into a private spool in the cache's .tmp while it is hashed
 * (spool.ts), and only that spool, once its sha256 matched, reaches the
 * extractor. A truncated download is reported as what it is (a checksum
 * mismatch); a local file swapped after it was hashed is never read again.
 * Whatever fails, the spool and the temporary tree are removed before the
 * error is reported.
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

/**
 * The verified tarball of a cached env, kept beside it: the spool it was
 * unpacked from, renamed here once the tree is in place. `bundle create`
 * copies it (hashing it again) instead of downloading the env again, and it
 * goes when the entry goes (cache.ts, removeEntry). It costs the compressed
 * size, a fraction of the tree's.
 */
export function keptTarball(cacheDir: string, sha256: string): string {
  return path.join(cacheDir, '.tarballs', sha256);
}

/** A tarball on local disk and the sha256 of its bytes, hashed as they were read or written. */
export interface TarballBytes {
  file: string;
  sha256: string;
}

/**
 * Where an env's tarball comes from: given a new spool path it may write to,
 * it returns a local file and that file's sha256. A file other than the
 * spool is copied into the spool (and hashed again) before it is used.
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
  /** The command that repairs a changed env, for the refusal. */
  repairHint?: ((env: string) => string) | undefined;
  /** Check an env found in the cache against its manifest before it is used (cache.ts, verifyEntry); undefined: not checked. */
  verify?: 'stat' | 'hash' | undefined;
  onProgress?: ((env: string, p: FetchProgress) => void) | undefined;
  /** A redirect followed while downloading an env (from, to, HTTP status). */
  onRedirect?: ((env: string, from: string, to: string, status: number) => void) | undefined;
  /** Stops a download or an unpacking; the provision then fails as 'interrupted' and leaves nothing behind. */
  signal?: AbortSignal | undefined;
}

export async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

const limitsOf = (options: ProvisionOptions) => options.limits ?? DEFAULT_LIMITS;

export const defaultSource: TarballSource = async (env, spool, options) => {
  if (env.source.kind === 'file') {
    const where = env.source.location;
    try {
      return { file: spool, ...(await spoolCopy(where, spool, limitsOf(options).maxBytes, options.signal)) };
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') throw new LeapfrogError('input', `env ${env.name} (${env.file}): source.file ${where} does not exist; build or copy the tarball there`);
      if (code === 'EISDIR') throw new LeapfrogError('input', `env ${env.name} (${env.file}): source.file ${where} is a directory; it must be a tar or tar.gz file`);
      throw err;
    }
  }
  if (options.offline) {
    throw new LeapfrogError(
      'input',
      `env ${env.name} is not in the cache and --offline forbids downloading ${showUrl(env.source.location)}; provision it before the window with \`${options.provisionHint ?? 'leapfrog envs provision --chain CHAIN'}\` (or import a bundle)`,
    );
  }
  const fetched = await fetchToFile(env.source.location, spool, {
    ...options.fetch,
    maxBytes: limitsOf(options).maxBytes,
    signal: options.signal,
    onProgress: options.onProgress ? (p) => options.onProgress!(env.name, p) : undefined,
    onRedirect: options.onRedirect ? (from, to, status) => options.onRedirect!(env.name, from, to, status) : undefined,
  });
  return { file: spool, sha256: fetched.sha256 };
};

/** The env's tree when it is cached; never touches the source. */
export function cachedEnv(env: EnvDef, cacheDir: string): ProvisionedEnv | undefined {
  const root = envRoot(cacheDir, env.source.sha256);
  return existsSync(root) ? { def: env, root, sha256: env.source.sha256, cached: true } : undefined;
}

/**
 * The env's tree in the cache, unpacked now unless it is there already.
 * `replace` (envs repair): unpack it again even when it is there, and put
 * the new tree in place of the old one (which is then removed), so a tree
 * changed after unpacking is replaced only by one that passed every check.
 */
export async function provisionEnv(env: EnvDef, cacheDir: string, options: ProvisionOptions = {}, replace = false): Promise<ProvisionedEnv> {
  const hit = cachedEnv(env, cacheDir);
  if (hit && !replace) return hit;
  const root = envRoot(cacheDir, env.source.sha256);
  const limits = limitsOf(options);

  const tmpBase = path.join(cacheDir, '.tmp');
  makeDirs(tmpBase, 'the env cache (--cache-dir)');
  const tmp = path.join(tmpBase, `${env.source.sha256.slice(0, 12)}-${process.pid}-${randomBytes(4).toString('hex')}`);
  const spool = `${tmp}.tar`;
  const plain = `${tmp}.plain.tar`;
  await mkdir(tmp, { mode: 0o700 });
  const shown = env.source.kind === 'url' ? showUrl(env.source.location) : env.source.location;
  const interrupted = (err: unknown) => new LeapfrogError('interrupted', `env ${env.name}: interrupted; nothing was cached`, { cause: err });
  try {
    let bytes: TarballBytes;
    try {
      bytes = await (options.source ?? defaultSource)(env, spool, options);
      // Only the spool is ever unpacked: what was hashed is what is read.
      if (bytes.file !== spool) bytes = { file: spool, ...(await spoolCopy(bytes.file, spool, limits.maxBytes, options.signal)) };
    } catch (err) {
      if (err instanceof LeapfrogError) throw err;
      if (options.signal?.aborted) throw interrupted(err);
      if (err instanceof TooBig) throw new LeapfrogError('input', `env ${env.name}: ${shown} is ${err.message}; nothing was cached. Raise --max-env-bytes if the env really is that large`, { cause: err });
      throw new LeapfrogError('input', `env ${env.name}: cannot read ${shown} (${(err as Error).message})`, { cause: err });
    }
    if (bytes.sha256 !== env.source.sha256) {
      throw new LeapfrogError(
        'input',
        `env ${env.name}: checksum mismatch for ${shown}: expected sha256 ${env.source.sha256}, got ${bytes.sha256}. The file is not the one ${env.file} declares; nothing was cached.`,
      );
    }
    try {
      const files = await safeExtract(spool, tmp, limits, { signal: options.signal, plainSpool: plain });
      await rm(plain, { force: true });
      // Each entry's mtime as unpacked, so the check before every run needs no hashing (cache.ts, checkEntry).
      await writeManifest(tmp, { sha256: env.source.sha256, env: env.name, source: shown, unpackedAt: new Date().toISOString(), files: await withMtimes(tmp, files) });
    } catch (err) {
      if (options.signal?.aborted) throw interrupted(err);
      if (err instanceof UnsafeTarball) {
        throw new LeapfrogError('input', `env ${env.name}: refused to unpack ${shown}: ${err.message}. Nothing was cached; rebuild the tarball without it`, { cause: err });
      }
      if (err instanceof BadArchive) throw new LeapfrogError('input', `env ${env.name}: ${shown} is not a tar, tar.gz or tar.zst leapfrog can unpack (${err.message}); nothing was cached`, { cause: err });
      if (err instanceof MissingTool) throw new LeapfrogError('input', `env ${env.name}: cannot unpack ${shown}: ${err.message}; nothing was cached`, { cause: err });
      const e = err as NodeJS.ErrnoException;
      throw new LeapfrogError('unexpected', `env ${env.name}: cannot unpack ${shown} into ${cacheDir}: ${e.code ? `${e.code}: ` : ''}${e.message}${e.code === 'ENOSPC' ? ' (free space there, or use --cache-dir elsewhere)' : ''}; nothing was cached`, { cause: err });
    }
    // Repair: the changed tree aside first (one rename), then the new one in, then the old one removed.
    const aside = replace && existsSync(root) ? path.join(tmpBase, `repair-${env.source.sha256.slice(0, 12)}-${process.pid}-${randomBytes(4).toString('hex')}`) : undefined;
    if (aside) await rename(root, aside);
    try {
      await rename(tmp, root);
    } catch (err) {
      // Another process unpacked the same content first: theirs is as good as ours.
      if (!existsSync(root)) throw err;
    }
    if (aside) await rm(aside, { recursive: true, force: true, maxRetries: 10, retryDelay: 50 });
    // Kept only once its tree is in place, so a kept tarball always has its entry.
    makeDirs(path.dirname(keptTarball(cacheDir, env.source.sha256)), 'the env cache (--cache-dir)');
    await rename(spool, keptTarball(cacheDir, env.source.sha256));
    return { def: env, root, sha256: env.source.sha256, cached: false };
  } finally {
    // Every write has settled before safeExtract returns or throws; the
    // retries only cover a filesystem slow to release what it just wrote.
    await Promise.all(
      [tmp, spool, plain].map((p) => rm(p, { recursive: true, force: true, maxRetries: 10, retryDelay: 50 }).catch(() => undefined)),
    );
  }
}
