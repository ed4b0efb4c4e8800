import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync } from 'node:fs';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as tar from 'tar';
import { LeapfrogError } from '../errors.js';
import type { EnvDef } from '../chain/types.js';

/**
 * The content-addressed env cache: an env's tarball is unpacked under
 * `<cache>/<sha256>/` and never changes afterwards. Unpacking goes to a
 * temporary directory beside it and is renamed into place only once the
 * checksum matched, so a crash or a bad tarball never leaves a half-filled
 * entry under a real checksum.
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

/** Byte source for an env's tarball. Remote URLs plug in here (fetch with undici). */
export type TarballSource = (env: EnvDef) => Promise<NodeJS.ReadableStream>;

export const localFileSource: TarballSource = async (env) => {
  if (env.source.kind !== 'file') {
    throw new LeapfrogError(
      'input',
      `env ${env.name} (${env.file}): remote sources (source.url) are not supported by this leapfrog yet; download the tarball and use source.file`,
    );
  }
  try {
    await stat(env.source.location);
  } catch {
    throw new LeapfrogError('input', `env ${env.name} (${env.file}): source.file ${env.source.location} does not exist; build or copy the tarball there`);
  }
  return createReadStream(env.source.location);
};

export async function provisionEnv(env: EnvDef, cacheDir: string, source: TarballSource = localFileSource): Promise<ProvisionedEnv> {
  const root = envRoot(cacheDir, env.source.sha256);
  if (existsSync(root)) return { def: env, root, sha256: env.source.sha256, cached: true };

  const tmpBase = path.join(cacheDir, '.tmp');
  await mkdir(tmpBase, { recursive: true, mode: 0o700 });
  const tmp = path.join(tmpBase, `${env.source.sha256.slice(0, 12)}-${process.pid}-${randomBytes(4).toString('hex')}`);
  const spool = `${tmp}.tar`;
  await mkdir(tmp, { mode: 0o700 });
  try {
    // Verify before unpacking: the bytes go to a spool file, hashed on their
    // way, and tar only ever reads bytes whose checksum matched. A truncated
    // download is then reported as what it is (a checksum mismatch), and a
    // tarball nobody pinned never reaches the extractor.
    const hash = createHash('sha256');
    const hashing = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        hash.update(chunk);
        cb(null, chunk);
      },
    });
    try {
      await pipeline(await source(env), hashing, createWriteStream(spool, { mode: 0o600 }));
    } catch (err) {
      if (err instanceof LeapfrogError) throw err;
      throw new LeapfrogError('input', `env ${env.name}: cannot read ${env.source.location} (${(err as Error).message})`, { cause: err });
    }
    const actual = hash.digest('hex');
    if (actual !== env.source.sha256) {
      throw new LeapfrogError(
        'input',
        `env ${env.name}: checksum mismatch for ${env.source.location}: expected sha256 ${env.source.sha256}, got ${actual}. The file is not the one ${env.file} declares; nothing was cached.`,
      );
    }
    try {
      await tar.x({ file: spool, cwd: tmp, strict: true, preserveOwner: false });
    } catch (err) {
      throw new LeapfrogError('input', `env ${env.name}: ${env.source.location} is not a readable tar.gz (${(err as Error).message})`, { cause: err });
    }
    try {
      await rename(tmp, root);
    } catch (err) {
      // Another process unpacked the same content first: theirs is as good as ours.
      if (!existsSync(root)) throw err;
    }
    return { def: env, root, sha256: actual, cached: false };
  } finally {
    // tar may still be finishing writes when it reports an error: retry on
    // ENOTEMPTY rather than let the cleanup's error hide the real one.
    await Promise.all(
      [tmp, spool].map((p) => rm(p, { recursive: true, force: true, maxRetries: 10, retryDelay: 50 }).catch(() => undefined)),
    );
  }
}
