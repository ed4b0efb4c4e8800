import { closeSync, createReadStream, openSync, readSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { LeapfrogError } from '../errors.js';
import { StatementSplitter, StatementTooLarge, type Statement } from './sql-split.js';

/**
 * Reading one dump file (plain or gzip) as batches of statements, with
 * memory bounded whatever the file holds: the splitter refuses a statement
 * over `maxStatementBytes`, and a gzip stream that inflates more than
 * MAX_GZIP_RATIO times the bytes read is refused as a bomb before it can
 * fill memory or the disk's worth of time.
 */

/**
 * Default cap on one statement. mariadb-dump writes extended INSERTs of
 * about --net-buffer-length (1 MB) each, and the server refuses a statement
 * over its max_allowed_packet (16 MiB by default, 1 GiB at most:
 * https://mariadb.com/kb/en/server-system-variables/#max_allowed_packet),
 * so a real dump's statements are far below this. A statement is held a
 * few times over while it is split, decoded and sent (bytes, text, the
 * LOAD DATA rows), which 64 MiB keeps under a few hundred MB of RSS.
 */
export const DEFAULT_MAX_STATEMENT_BYTES = 64 * 1024 * 1024;

/**
 * Deflate cannot exceed about 1032:1; SQL dumps compress around 5-20:1 and
 * rarely past 100:1 (long runs of one byte). Past 250:1, and only once it
 * has inflated more than GZIP_FREE_BYTES, the stream is refused; a genuine
 * dump that compresses that well can be gunzipped first and passed as .sql.
 */
export const MAX_GZIP_RATIO = 250;
const GZIP_FREE_BYTES = 64 * 1024 * 1024;

const GZIP = Buffer.from([0x1f, 0x8b]);

export function isGzip(file: string): boolean {
  const fd = openSync(file, 'r');
  try {
    const b = Buffer.alloc(2);
    return readSync(fd, b, 0, 2, 0) === 2 && b.equals(GZIP);
  } finally {
    closeSync(fd);
  }
}

const mib = (n: number) => `${(n / 1024 / 1024).toFixed(n < 10 * 1024 * 1024 ? 1 : 0)} MiB`;

export interface ReadOptions {
  maxStatementBytes: number;
  /** Called with each chunk of the file's own bytes read (compressed bytes for gzip). */
  onRead?: ((bytes: number) => void) | undefined;
}

/** The file's statements, a batch per chunk read; the stream is closed however the caller stops. */
export async function* dumpStatements(file: string, o: ReadOptions): AsyncGenerator<Statement[]> {
  let gzip: boolean;
  try {
    gzip = isGzip(file);
  } catch (err) {
    throw new LeapfrogError('input', `--dump ${file}: cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, { cause: err });
  }
  const raw = createReadStream(file, { highWaterMark: 1024 * 1024 });
  let rawBytes = 0;
  raw.on('data', (b) => {
    rawBytes += (b as Buffer).length;
    o.onRead?.((b as Buffer).length);
  });
  const input: Readable = gzip ? raw.pipe(createGunzip()) : raw;
  raw.on('error', (err) => input.destroy(err));
  const splitter = new StatementSplitter(o.maxStatementBytes);
  let inflated = 0;
  try {
    for await (const chunk of input) {
      const out: Statement[] = [];
      if (gzip) {
        inflated += (chunk as Buffer).length;
        if (inflated > GZIP_FREE_BYTES && inflated > MAX_GZIP_RATIO * rawBytes) {
          throw new LeapfrogError(
            'input',
            `--dump ${file}: refused as a gzip bomb: ${mib(rawBytes)} of it inflated to over ${mib(inflated)} (more than ${MAX_GZIP_RATIO} times); if it is a genuine dump, gunzip it and pass the .sql file`,
          );
        }
      }
      splitter.push(chunk as Buffer, out);
      yield out;
    }
    const out: Statement[] = [];
    splitter.end(out);
    yield out;
  } catch (err) {
    if (err instanceof LeapfrogError) throw err;
    if (err instanceof StatementTooLarge) {
      throw new LeapfrogError(
        'input',
        `--dump ${file}: the statement starting at line ${err.line} is larger than --max-statement-bytes (${err.cap} bytes; ${err.bytes} read and no end yet): not a dump the server could load (its max_allowed_packet is at most 1 GiB) or a damaged file; raise --max-statement-bytes if it is genuine`,
        { cause: err },
      );
    }
    throw new LeapfrogError('input', `--dump ${file}: cannot read it (${(err as Error).message})`, { cause: err });
  } finally {
    raw.destroy();
    input.destroy();
  }
}
