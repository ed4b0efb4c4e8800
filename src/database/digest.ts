import { createHash } from 'node:crypto';
import { closeSync, createReadStream, createWriteStream, fsyncSync, openSync, renameSync, rmSync } from 'node:fs';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';

/**
 * Snapshot files: a database's bytes (a SQLite file, a dump's SQL),
 * gzip-compressed as they stream, hashed as they are written, and put in
 * place only once on disk, so the sha256 the ledger records is that of the
 * file a rollback will read.
 */

export interface SnapshotFile {
  database: string;
  /** null: the database did not exist when the snapshot was taken; a rollback drops it. */
  file: string | null;
  sha256: string | null;
  bytes: number | null;
}

/** Hash and count what passes through. */
function hasher(): Transform & { digest(): { sha256: string; bytes: number } } {
  const h = createHash('sha256');
  let bytes = 0;
  const t = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      h.update(chunk);
      bytes += chunk.length;
      cb(null, chunk);
    },
  }) as Transform & { digest(): { sha256: string; bytes: number } };
  t.digest = () => ({ sha256: h.digest('hex'), bytes });
  return t;
}

export async function gzipTo(source: Readable, dest: string, level: number): Promise<{ sha256: string; bytes: number }> {
  const tmp = dest + '.part';
  const h = hasher();
  try {
    await pipeline(source, createGzip({ level }), h, createWriteStream(tmp, { mode: 0o600 }));
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
  durableRename(tmp, dest);
  return h.digest();
}

/** Put a finished file in place only once its bytes are on disk: a crash leaves the old file or the new, never half of one. */
export function durableRename(tmp: string, dest: string): void {
  const fd = openSync(tmp, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, dest);
}

/** sha256 of a snapshot file as it is on disk now. */
export async function fileSha256(file: string): Promise<string> {
  const h = createHash('sha256');
  await pipeline(createReadStream(file), h);
  return h.digest('hex');
}
