import { once } from 'node:events';
import { open, type FileHandle } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import * as tar from 'tar';
import { MissingTool, sniff, tarStream, type Compression } from './decompress.js';
import type { Header } from './policy.js';

/**
 * Reading a tar, tar.gz or tar.zst one entry at a time, for the header pass and the
 * writer alike, so both see exactly the same entries. tar's Parser (strict:
 * every warning is an error) reads the headers, PAX and GNU long names
 * included; around it we add what it leaves to its caller:
 *
 * - entries it would skip silently (unknown types, old GNU sparse files, a
 *   header too big to read, which would leave the next entry with its short
 *   ustar name) are errors, and so are PAX sparse files, which it would
 *   unpack as their raw map;
 * - decompression is ours, so the work is bounded: at most `maxStreamBytes`
 *   decompressed bytes, and reading stops at the archive's end-of-archive
 *   blocks rather than inflating whatever follows;
 * - every wait (for the next entry, for an entry's next chunk, for the
 *   parser to drain) races the first failure, so a truncated or corrupt
 *   archive, a failed write or an abort ends the walk with an error instead
 *   of a promise that never settles (a truncated entry used to hang `run`).
 */

/** A tarball tar cannot read, or one using what leapfrog does not support: bad input. */
export class BadArchive extends Error {}

export interface WalkOptions {
  /** Decompressed bytes (headers, bodies, padding) read at most. */
  maxStreamBytes: number;
  signal?: AbortSignal | undefined;
  /**
   * A new file (created here, O_EXCL) that receives the decompressed tar as
   * it is read, up to the end-of-archive blocks, so a second pass can read
   * it without inflating again. Nothing is written there for a plain tar.
   */
  keepTar?: string | undefined;
}

export { MissingTool, sniff, type Compression };

export interface WalkEntry {
  /** 1 for the first entry. */
  index: number;
  header: Header;
  /** The entry's body, chunk by chunk; throws if the archive ends before `header.size` bytes. */
  body(): AsyncGenerator<Buffer>;
  /** The whole body at once (for small entries: one promise, not one per chunk); the same check. */
  whole(): Promise<Buffer>;
}

const ZEROS = Buffer.alloc(256 * 1024);
const isZero = (b: Buffer) => b.length <= ZEROS.length && b.equals(ZEROS.subarray(0, b.length));

/** Headers larger than this (PAX records, GNU long names) are refused; names are limited to 4 KiB anyway. */
const MAX_META_BYTES = 64 * 1024;
/** A PAX record that makes the next entry a GNU sparse file (GNU tar manual, "Sparse Formats"). */
const SPARSE = /(^|\n)\d+ GNU\.sparse\./;

/**
 * Call `visit` for every entry, in archive order, one at a time. The parser
 * holds the next entry until `visit` returns; whatever of the body `visit`
 * did not read is skipped.
 */
export async function walkArchive(file: string, o: WalkOptions, visit: (e: WalkEntry) => Promise<void> | void): Promise<Compression> {
  const compression = await sniff(file);
  const stop = new AbortController();
  let failure: Error | undefined;
  // Who waits now, rejected by the first failure. Not Promise.race with one
  // long-lived promise: that keeps a reaction per wait (several per entry)
  // until the walk ends.
  const waiting = new Set<(e: Error) => void>();
  const fail = (e: Error) => {
    if (failure) return;
    failure = e;
    for (const reject of waiting) reject(e);
    waiting.clear();
    stop.abort(e);
  };
  const onAbort = () => fail(o.signal!.reason instanceof Error ? o.signal!.reason : new Error('interrupted'));
  if (o.signal?.aborted) onAbort();
  o.signal?.addEventListener('abort', onAbort);
  const guard = <T>(p: Promise<T>): Promise<T> => {
    if (failure) return Promise.reject(failure);
    return new Promise<T>((resolve, reject) => {
      waiting.add(reject);
      p.then(
        (v) => {
          waiting.delete(reject);
          resolve(v);
        },
        (e: unknown) => {
          waiting.delete(reject);
          reject(e);
        },
      );
    });
  };

  const parser = new tar.Parser({ strict: true, maxMetaEntrySize: MAX_META_BYTES, brotli: false, zstd: false });
  const queue: { entry: tar.ReadEntry; sparse: boolean }[] = [];
  let wake: (() => void) | undefined;
  let ended = false;
  let atEof = false;
  let sparse = false;
  parser.on('meta', (m: string) => {
    if (SPARSE.test(m)) sparse = true;
  });
  parser.on('ignoredEntry', (e: tar.ReadEntry) => {
    fail(new BadArchive(e.meta ? `a ${e.type} header of ${e.size} bytes (more than ${MAX_META_BYTES}) before the next entry` : `${e.path}: ${e.type === 'SparseFile' ? 'a GNU sparse file; leapfrog does not unpack sparse entries (rebuild the tarball without --sparse)' : `${e.type} entries are not supported`}`));
  });
  parser.on('entry', (entry: tar.ReadEntry) => {
    queue.push({ entry, sparse });
    sparse = false;
    wake?.();
  });
  parser.on('eof', () => (atEof = true));
  parser.on('error', (e: Error) => fail(new BadArchive(e.message)));
  parser.on('end', () => {
    ended = true;
    wake?.();
  });

  let kept: FileHandle | undefined;
  /** The decompressor's output was read to its end (it ended on its own, not stopped by us). */
  let drained = false;
  const feed = async (source: AsyncIterable<Buffer>) => {
    let total = 0;
    for await (const chunk of source) {
      total += chunk.length;
      if (total > o.maxStreamBytes) {
        fail(new BadArchive(`more than ${o.maxStreamBytes} bytes once decompressed (limit)`));
        throw failure;
      }
      // The parser and the kept copy take the same chunk at the same time; both are waited for before the next.
      // A chunk of zeros is left as a hole, so a bomb of zeros costs no disk here either.
      const copy = kept && !isZero(chunk) ? kept.write(chunk, 0, chunk.length, total - chunk.length) : undefined;
      if (!parser.write(chunk)) await guard(once(parser, 'drain'));
      if (copy) await guard(copy);
      // Whatever follows the end-of-archive blocks is not read: it cannot matter, and inflating it is work a bomb asks for.
      if (atEof) break;
    }
    if (kept) await guard(kept.truncate(total));
    drained = !atEof;
    parser.end();
  };
  if (o.keepTar !== undefined && compression !== 'none') kept = await open(o.keepTar, 'wx', 0o600);
  const input = tarStream(file, compression);
  const fed = pipeline(input.stream, feed, { signal: stop.signal })
    .then(() => {
      // Stopped reading at the end-of-archive blocks: the decompressor may still be writing what follows them.
      if (atEof) input.stop();
      return input.done;
    })
    .catch((e: NodeJS.ErrnoException) => {
      // Stopping at end-of-archive aborts the rest of the pipeline on purpose;
      // after a failure, tearing the pipeline down raises errors of its own.
      if (failure || (atEof && e.code === 'ABORT_ERR')) return;
      if (e instanceof BadArchive || e instanceof MissingTool) fail(e);
      else if (/^Z_/.test(e.code ?? '')) fail(new BadArchive(`not a readable gzip stream (${e.message})`));
      else if (/^not a readable zstd/.test(e.message)) fail(new BadArchive(e.message));
      else fail(e);
    });

  const body = (entry: tar.ReadEntry, size: number) =>
    async function* (): AsyncGenerator<Buffer> {
      const it = entry[Symbol.asyncIterator]();
      let got = 0;
      for (;;) {
        const r = await guard(it.next());
        if (r.done) break;
        got += (r.value as Buffer).length;
        yield r.value as Buffer;
      }
      if (got !== size) throw new BadArchive(`${entry.path}: truncated (${got} of ${size} bytes)`);
    };

  const whole = (entry: tar.ReadEntry, size: number) => (): Promise<Buffer> => {
    if (size === 0) return Promise.resolve(Buffer.alloc(0));
    return guard(
      new Promise<Buffer>((resolve, reject) => {
        const chunks: Buffer[] = [];
        let got = 0;
        entry.on('data', (c: Buffer) => {
          chunks.push(c);
          got += c.length;
        });
        entry.on('end', () => (got === size ? resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)) : reject(new BadArchive(`${entry.path}: truncated (${got} of ${size} bytes)`))));
        entry.on('error', reject);
      }),
    );
  };

  let index = 0;
  try {
    for (;;) {
      while (queue.length === 0 && !ended) await guard(new Promise<void>((r) => (wake = r)));
      wake = undefined;
      if (failure) throw failure;
      const next = queue.shift();
      if (!next) break;
      const { entry } = next;
      const header: Header = { path: entry.path, type: entry.type, size: entry.size ?? 0, mode: entry.mode, mtime: entry.mtime, linkpath: entry.linkpath, sparse: next.sparse };
      await visit({ index: ++index, header, body: body(entry, header.size), whole: whole(entry, header.size) });
      if (failure) throw failure;
      // Skip what `visit` did not read; the parser then offers the next entry.
      entry.resume();
    }
    await fed;
    if (failure) throw failure;
  } catch (err) {
    fail(err as Error);
    // A zstd that failed (a corrupt frame) is the cause of whatever the parser said about what it wrote before.
    const z = drained ? await input.done.then(() => undefined, (e: Error) => e) : undefined;
    throw z instanceof MissingTool ? z : z ? new BadArchive(z.message) : (failure ?? err);
  } finally {
    o.signal?.removeEventListener('abort', onAbort);
    stop.abort();
    input.stop();
    await fed;
    await input.done.catch(() => undefined);
    await kept?.close();
  }
  return compression;
}
