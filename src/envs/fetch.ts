import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, stat, truncate } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { Agent, request } from 'undici';
import { LeapfrogError } from '../errors.js';

/**
 * Download a URL into a spool file, hashing every byte as it is written: one
 * pass over the bytes for download and checksum. The only module that
 * imports undici.
 *
 * A broken transfer resumes with a Range request from what is already on
 * disk; a server that ignores Range (200 instead of 206, or a Content-Range
 * that does not start where we stopped) gets a fresh download instead, so the
 * spool never holds two halves of different answers spliced together.
 * Connection errors, timeouts and 5xx answers are retried with exponential
 * backoff; other statuses (404, 403…) are answers, not accidents, and fail at once.
 */

export interface FetchOptions {
  /** Time allowed to open the TCP/TLS connection. */
  connectTimeoutMs: number;
  /** Time allowed without a byte arriving (headers or body). */
  idleTimeoutMs: number;
  /** Attempts after the first. */
  retries: number;
  /** First backoff; doubled on every retry. */
  backoffMs: number;
  onProgress?: ((p: FetchProgress) => void) | undefined;
  signal?: AbortSignal | undefined;
}

export interface FetchProgress {
  url: string;
  /** Bytes in the spool file so far (including a resumed prefix). */
  bytes: number;
  /** Full size when the server said, else undefined. */
  total: number | undefined;
  /** 1 for the first try, 2 after the first retry… */
  attempt: number;
}

export const DEFAULT_FETCH: FetchOptions = { connectTimeoutMs: 15_000, idleTimeoutMs: 60_000, retries: 5, backoffMs: 500 };

export interface Fetched {
  sha256: string;
  bytes: number;
  attempts: number;
}

class Answer extends Error {}

/** Where a URL may be shown: never with userinfo (a token in https://user:pass@host). */
export function showUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.username || u.password) {
      u.username = '****';
      u.password = '';
    }
    return u.toString();
  } catch {
    return url;
  }
}

async function hashFile(file: string): Promise<{ hash: Hash; bytes: number }> {
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const chunk of createReadStream(file)) {
    hash.update(chunk as Buffer);
    bytes += (chunk as Buffer).length;
  }
  return { hash, bytes };
}

function contentRangeStart(value: string | string[] | undefined): { start: number; total: number | undefined } | undefined {
  const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(String(value ?? '').trim());
  if (!m) return undefined;
  return { start: Number(m[1]), total: m[3] === '*' ? undefined : Number(m[3]) };
}

export async function fetchToFile(url: string, spool: string, options: Partial<FetchOptions> = {}): Promise<Fetched> {
  const o: FetchOptions = { ...DEFAULT_FETCH, ...options };
  const shown = showUrl(url);
  const agent = new Agent({ connect: { timeout: o.connectTimeoutMs }, headersTimeout: o.idleTimeoutMs, bodyTimeout: o.idleTimeoutMs });
  const fh = await open(spool, 'w', 0o600);
  await fh.close();
  let hash = createHash('sha256');
  let received = 0;
  let lastError: unknown;
  try {
    for (let attempt = 1; attempt <= o.retries + 1; attempt++) {
      try {
        if (attempt > 1) {
          await sleep(o.backoffMs * 2 ** (attempt - 2), undefined, { signal: o.signal });
          // Start again from what actually reached the disk, not from what the
          // failed attempt believed it had written.
          const size = (await stat(spool)).size;
          if (size !== received) ({ hash, bytes: received } = await hashFile(spool));
        }
        const res = await request(url, {
          method: 'GET',
          dispatcher: agent,
          headers: received > 0 ? { range: `bytes=${received}-` } : {},
          signal: o.signal,
        });
        let total: number | undefined;
        const length = res.headers['content-length'] === undefined ? undefined : Number(res.headers['content-length']);
        if (res.statusCode === 206 && received > 0) {
          const range = contentRangeStart(res.headers['content-range']);
          if (range === undefined || range.start !== received) {
            // Not the range we asked for: the only safe reading is none of it.
            await res.body.dump();
            const asked = received;
            await truncate(spool, 0);
            hash = createHash('sha256');
            received = 0;
            throw new Error(`the server answered Range bytes=${asked}- with Content-Range ${String(res.headers['content-range'])}; downloading afresh`);
          }
          total = range.total;
        } else if (res.statusCode === 200) {
          if (received > 0) {
            // The server ignored Range and sends the whole file again.
            await truncate(spool, 0);
            hash = createHash('sha256');
            received = 0;
          }
          total = length;
        } else if (res.statusCode === 416 && received > 0) {
          await res.body.dump().catch(() => undefined);
          // "Nothing from there on": we already had every byte when the last
          // attempt failed (a Content-Length that promised more than the file).
          // The checksum decides whether that is the whole file.
          const m = /^bytes \*\/(\d+)$/.exec(String(res.headers['content-range'] ?? ''));
          if (m && Number(m[1]) === received) return { sha256: hash.digest('hex'), bytes: received, attempts: attempt };
          await truncate(spool, 0);
          hash = createHash('sha256');
          received = 0;
          throw new Error('the server cannot serve the rest of the file (416); downloading afresh');
        } else {
          await res.body.dump().catch(() => undefined);
          if (res.statusCode >= 500 || res.statusCode === 429 || res.statusCode === 408) throw new Error(`HTTP ${res.statusCode}`);
          throw new Answer(`HTTP ${res.statusCode}`);
        }
        o.onProgress?.({ url: shown, bytes: received, total, attempt });
        // Our own write loop, not a pipeline: the hash and `received` then
        // always describe exactly the bytes on disk, which is what a resume needs.
        const out = await open(spool, 'a');
        try {
          for await (const chunk of res.body) {
            const buf = chunk as Buffer;
            await out.write(buf);
            hash.update(buf);
            received += buf.length;
            o.onProgress?.({ url: shown, bytes: received, total, attempt });
          }
        } finally {
          await out.close();
        }
        if (total !== undefined && received !== total) throw new Error(`the transfer ended after ${received} of ${total} bytes`);
        return { sha256: hash.digest('hex'), bytes: received, attempts: attempt };
      } catch (err) {
        if (err instanceof Answer) {
          throw new LeapfrogError('input', `${shown} answered ${err.message}; check source.url (and that the artifact server has the file)`, { cause: err });
        }
        if (o.signal?.aborted) throw new LeapfrogError('interrupted', `download of ${shown} interrupted`, { cause: err });
        lastError = err;
      }
    }
  } finally {
    await agent.close().catch(() => undefined);
  }
  const why = lastError instanceof Error ? `${(lastError as { code?: string }).code ? `${(lastError as { code?: string }).code}: ` : ''}${lastError.message}` : String(lastError);
  throw new LeapfrogError(
    'unexpected',
    `cannot download ${shown}: ${o.retries + 1} attempts failed, the last with ${why}. Check the network and the artifact server, or provision the env from a file or a bundle (see README, "Offline")`,
    { cause: lastError },
  );
}
