import { createHash } from 'node:crypto';
import { constants, createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';

/**
 * The private spool: every tarball is read from its source exactly once,
 * into a file of our own (created O_EXCL|O_NOFOLLOW, mode 0600, in the
 * cache's 0700 .tmp), its sha256 taken from the bytes as they are written.
 * Only that file is checked and unpacked, so what is unpacked is what was
 * hashed: a source swapped between two reads (a FIFO serving two tarballs,
 * a file replaced on disk) has no second read to win.
 */

export class TooBig extends Error {
  constructor(readonly limit: number) {
    super(`more than ${limit} bytes (--max-env-bytes)`);
  }
}

export interface Spooled {
  sha256: string;
  bytes: number;
}

/** Create the spool; fails if anything already has its name. */
export async function createSpool(spool: string): Promise<void> {
  await (await open(spool, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600)).close();
}

/** Copy `source` into the (new) spool, hashing on the way; at most `maxBytes`. */
export async function spoolCopy(source: string, spool: string, maxBytes: number, signal?: AbortSignal): Promise<Spooled> {
  const hash = createHash('sha256');
  let bytes = 0;
  const out = await open(spool, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  const counted = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      bytes += chunk.length;
      if (bytes > maxBytes) return cb(new TooBig(maxBytes));
      hash.update(chunk);
      cb(null, chunk);
    },
  });
  try {
    await pipeline(createReadStream(source, { highWaterMark: 1024 * 1024 }), counted, out.createWriteStream(), { signal });
  } finally {
    await out.close().catch(() => undefined);
  }
  return { sha256: hash.digest('hex'), bytes };
}
