import { createHash, type Hash } from 'node:crypto';
import { constants, createReadStream } from 'node:fs';
import { open, stat, truncate } from 'node:fs/promises';
import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import { setTimeout as sleep } from 'node:timers/promises';
import { LeapfrogError } from '../errors.js';
import { TooBig } from './spool.js';

/**
 * Download a URL into a spool file, hashing every byte as it is written: one
 * pass over the bytes for download and checksum.
 *
 * The client is Node's own http/https. undici 7 (the last major for Node 20;
 * 8 needs Node 22.19) crashes the process with an uncatchable
 * `AssertionError: assert(!this.paused)` when a server closes the connection
 * while a slow reader holds the body back (nodejs/undici#5360): every
 * download to disk is such a reader, and `Connection: close` after the body
 * is what most artifact servers send. The fix (nodejs/undici#5474) is in
 * undici 8 only; 7.30.2, the newest 7.x, still asserts. Node's http client
 * applies backpressure through the socket and has no such state.
 *
 * Limits, each its own clear error: the body may not exceed `maxBytes`
 * (checked against Content-Length before a byte is read, and on the bytes as
 * they arrive); the whole download, every retry and redirect included, must
 * end within `deadlineMs` (a server dripping a byte a second is given up
 * on); a connection must open within `connectTimeoutMs` and a byte must
 * arrive every `idleTimeoutMs`. Redirects (301, 302, 303, 307, 308) are
 * followed up to `maxRedirects` hops, to http or https only, each reported;
 * credentials in the URL go only to the origin they were written for.
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
  /** The whole download: every attempt, backoff and redirect. */
  deadlineMs: number;
  /** Attempts after the first. */
  retries: number;
  /** First backoff; doubled on every retry. */
  backoffMs: number;
  /** Largest body accepted. */
  maxBytes: number;
  /** Redirects followed per attempt. */
  maxRedirects: number;
  onProgress?: ((p: FetchProgress) => void) | undefined;
  onRedirect?: ((from: string, to: string, status: number) => void) | undefined;
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

export const DEFAULT_FETCH: FetchOptions = {
  connectTimeoutMs: 15_000,
  idleTimeoutMs: 60_000,
  deadlineMs: 60 * 60_000,
  retries: 5,
  backoffMs: 500,
  maxBytes: Number.MAX_SAFE_INTEGER,
  maxRedirects: 5,
};

export interface Fetched {
  sha256: string;
  bytes: number;
  attempts: number;
  /** Every URL redirected to, in order (shown without credentials). */
  redirects: string[];
}

/** An answer that retrying will not change (404, a redirect loop, a body too big): bad input. Its message follows the URL. */
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

function contentRange(value: string | string[] | undefined): { start: number; total: number | undefined } | undefined {
  const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(String(value ?? '').trim());
  if (!m) return undefined;
  return { start: Number(m[1]), total: m[3] === '*' ? undefined : Number(m[3]) };
}

/** One GET, no redirects followed; the response's body is left for the caller (or destroyed on error). */
function get(url: URL, headers: Record<string, string>, o: FetchOptions, signal: AbortSignal): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const client = url.protocol === 'https:' ? https : http;
    // agent: false: one connection per request, nothing pooled between attempts.
    const req = client.request(url, { method: 'GET', headers, agent: false, signal, timeout: o.connectTimeoutMs });
    req.on('socket', (s) => {
      const idle = () => s.setTimeout(o.idleTimeoutMs);
      s.once(url.protocol === 'https:' ? 'secureConnect' : 'connect', idle);
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error('the connection timed out (no byte within --connect-timeout or --idle-timeout)'), { code: 'ETIMEDOUT' })));
    req.on('response', resolve);
    req.on('error', reject);
    req.end();
  });
}

/** Follow redirects from `start` to a response that is not one. */
async function follow(start: string, headers: Record<string, string>, o: FetchOptions, signal: AbortSignal, redirects: string[]): Promise<IncomingMessage> {
  let url = new URL(start);
  const origin = url.origin;
  for (let hop = 0; ; hop++) {
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Answer(`redirected to ${showUrl(url.toString())}: only http and https redirects are followed`);
    const res = await get(url, headers, o, signal);
    const status = res.statusCode ?? 0;
    if (![301, 302, 303, 307, 308].includes(status)) return res;
    res.resume();
    const location = res.headers.location;
    if (!location) throw new Answer(`answered HTTP ${status} without a Location header`);
    if (hop >= o.maxRedirects) throw new Answer(`more than ${o.maxRedirects} redirects (the last to ${showUrl(new URL(location, url).toString())}); point source.url at the file itself`);
    const next = new URL(location, url);
    // Credentials were written for the first origin only (curl and fetch do the same).
    if (next.origin !== origin) {
      next.username = '';
      next.password = '';
    }
    o.onRedirect?.(showUrl(url.toString()), showUrl(next.toString()), status);
    redirects.push(showUrl(next.toString()));
    url = next;
  }
}

export async function fetchToFile(url: string, spool: string, options: Partial<FetchOptions> = {}): Promise<Fetched> {
  const o: FetchOptions = { ...DEFAULT_FETCH, ...options };
  const shown = showUrl(url);
  // Node's timers hold at most 2^31-1 ms (24.8 days); a longer deadline is that one.
  const deadline = AbortSignal.timeout(Math.min(o.deadlineMs, 2 ** 31 - 1));
  const signal = o.signal ? AbortSignal.any([o.signal, deadline]) : deadline;
  await (await open(spool, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600)).close();
  let hash = createHash('sha256');
  let received = 0;
  let lastError: unknown;
  const redirects: string[] = [];
  const afresh = async () => {
    await truncate(spool, 0);
    hash = createHash('sha256');
    received = 0;
  };
  const tooBig = (what: string) => new Answer(`${what}, ${new TooBig(o.maxBytes).message}; nothing was cached. Raise --max-env-bytes if the env really is that large`);
  for (let attempt = 1; attempt <= o.retries + 1; attempt++) {
    let res: IncomingMessage | undefined;
    try {
      if (attempt > 1) {
        await sleep(o.backoffMs * 2 ** (attempt - 2), undefined, { signal });
        // Start again from what actually reached the disk, not from what the
        // failed attempt believed it had written.
        const size = (await stat(spool)).size;
        if (size !== received) ({ hash, bytes: received } = await hashFile(spool));
      }
      res = await follow(url, received > 0 ? { range: `bytes=${received}-` } : {}, o, signal, redirects);
      const status = res.statusCode ?? 0;
      let total: number | undefined;
      const length = res.headers['content-length'] === undefined ? undefined : Number(res.headers['content-length']);
      if (status === 206 && received > 0) {
        const range = contentRange(res.headers['content-range']);
        if (range === undefined || range.start !== received) {
          // Not the range we asked for: the only safe reading is none of it.
          const asked = received;
          await afresh();
          throw new Error(`the server answered Range bytes=${asked}- with Content-Range ${String(res.headers['content-range'])}; downloading afresh`);
        }
        total = range.total;
      } else if (status === 200) {
        // The server ignored Range (or none was asked): the whole file comes again.
        if (received > 0) await afresh();
        total = length;
      } else if (status === 416 && received > 0) {
        // "Nothing from there on": we already had every byte when the last
        // attempt failed (a Content-Length that promised more than the file).
        // The checksum decides whether that is the whole file.
        const m = /^bytes \*\/(\d+)$/.exec(String(res.headers['content-range'] ?? ''));
        if (m && Number(m[1]) === received) return { sha256: hash.digest('hex'), bytes: received, attempts: attempt, redirects };
        await afresh();
        throw new Error('the server cannot serve the rest of the file (416); downloading afresh');
      } else if (status >= 500 || status === 429 || status === 408) {
        throw new Error(`HTTP ${status}`);
      } else {
        throw new Answer(`answered HTTP ${status}; check source.url (and that the artifact server has the file)`);
      }
      if (total !== undefined && total > o.maxBytes) throw tooBig(`the server says the file is ${total} bytes`);
      o.onProgress?.({ url: shown, bytes: received, total, attempt });
      // Our own write loop, not a pipeline: the hash and `received` then
      // always describe exactly the bytes on disk, which is what a resume needs.
      const out = await open(spool, 'a');
      try {
        for await (const chunk of res) {
          const buf = chunk as Buffer;
          if (received + buf.length > o.maxBytes) throw tooBig(`${received + buf.length} bytes arrived`);
          await out.write(buf);
          hash.update(buf);
          received += buf.length;
          o.onProgress?.({ url: shown, bytes: received, total, attempt });
        }
      } finally {
        await out.close();
      }
      if (total !== undefined && received !== total) throw new Error(`the transfer ended after ${received} of ${total} bytes`);
      return { sha256: hash.digest('hex'), bytes: received, attempts: attempt, redirects };
    } catch (err) {
      if (o.signal?.aborted) throw new LeapfrogError('interrupted', `download of ${shown} interrupted`, { cause: err });
      if (deadline.aborted) {
        throw new LeapfrogError('input', `download of ${shown} did not finish within ${o.deadlineMs / 1000} s (${received} bytes in ${attempt} attempt${attempt === 1 ? '' : 's'}); the server is too slow or stalled. Raise --download-timeout, or provision the env from a file or a bundle with leapfrog bundle create (see README)`, { cause: err });
      }
      if (err instanceof Answer) throw new LeapfrogError('input', `${shown}: ${err.message}`, { cause: err });
      lastError = err;
    } finally {
      res?.destroy();
    }
  }
  const why = lastError instanceof Error ? `${(lastError as { code?: string }).code ? `${(lastError as { code?: string }).code}: ` : ''}${lastError.message}` : String(lastError);
  throw new LeapfrogError(
    'input',
    `cannot download ${shown}: ${o.retries + 1} attempts failed, the last with ${why}. Check the network and the artifact server, or provision the env from a file or a bundle with leapfrog bundle create (see README)`,
    { cause: lastError },
  );
}
