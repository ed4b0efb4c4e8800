import { spawn } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { clientEnvironment } from '../sandbox/child-env.js';

/**
 * The tar inside an env tarball, whatever wraps it: gzip, zstd or nothing,
 * told apart by the file's first bytes (RFC 1952 §2.3.1 for gzip's 1f 8b;
 * RFC 8878 §3.1.1 for zstd's frame magic 28 b5 2f fd), never by its name.
 *
 * gzip is inflated by Node's zlib, which runs in libuv's thread pool, off
 * the main thread. Node 20's zlib has no zstd (zlib.createZstdDecompress
 * arrived in Node 22.15 and 23.8), so zstd is the `zstd` program (Debian
 * package zstd), reading our private spool by name and writing the tar to a
 * pipe: another process, so decompression runs beside the parser on a
 * second core. Its own default limit refuses a frame that asks for a window
 * over 128 MiB (`--memory`, zstd(1)), so a crafted frame cannot make it
 * allocate more; what it may write is bounded by the reader (archive.ts
 * stops at `maxStreamBytes` and at the end-of-archive blocks, and the
 * process is killed then).
 */

export type Compression = 'gzip' | 'zstd' | 'none';

/** A tarball that needs a program this host does not have: said with the package that has it. */
export class MissingTool extends Error {}

export async function sniff(file: string): Promise<Compression> {
  const fh = await open(file, 'r');
  try {
    const b = Buffer.alloc(4);
    const { bytesRead } = await fh.read(b, 0, 4, 0);
    if (bytesRead >= 2 && b[0] === 0x1f && b[1] === 0x8b) return 'gzip';
    if (bytesRead === 4 && b.readUInt32LE(0) === 0xfd2fb528) return 'zstd';
    return 'none';
  } finally {
    await fh.close();
  }
}

export interface TarStream {
  stream: Readable;
  /**
   * Settles once the decompressor is gone: rejects when it failed on data
   * it was made to read to the end, resolves when it succeeded or was
   * stopped (`stop`) because the reader had read enough.
   */
  done: Promise<void>;
  stop(): void;
}

/** The decompressed bytes of `file`, read once from the start. */
export function tarStream(file: string, compression: Compression): TarStream {
  const input = () => createReadStream(file, { highWaterMark: 1024 * 1024 });
  if (compression === 'none') {
    const stream = input();
    return { stream, done: Promise.resolve(), stop: () => stream.destroy() };
  }
  if (compression === 'gzip') {
    const raw = input();
    const stream = raw.pipe(createGunzip({ chunkSize: 256 * 1024 }));
    raw.on('error', (e) => stream.destroy(e));
    return { stream, done: Promise.resolve(), stop: () => (raw.destroy(), stream.destroy()) };
  }
  // -d -c: to stdout; -q: no progress or summary on stderr; `--` then the name: a name is never an option.
  const child = spawn('zstd', ['-d', '-c', '-q', '--', file], { stdio: ['ignore', 'pipe', 'pipe'], env: clientEnvironment() });
  let stopped = false;
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (s: string) => {
    if (stderr.length < 4096) stderr += s;
  });
  const done = new Promise<void>((resolve, reject) => {
    child.on('error', (e: NodeJS.ErrnoException) =>
      reject(e.code === 'ENOENT' ? new MissingTool('this is a .tar.zst tarball and the zstd program is not installed (Debian: apt-get install zstd)') : e),
    );
    child.on('close', (code, signal) => {
      if (stopped || code === 0) resolve();
      else reject(new Error(`not a readable zstd stream (zstd ${code === null ? `killed by ${signal}` : `exited ${code}`}${stderr.trim() ? `: ${stderr.trim().split('\n').slice(-1)[0]}` : ''})`));
    });
  });
  // Handled here as well: the reader may learn of a failure before it asks.
  done.catch(() => undefined);
  const stop = () => {
    stopped = true;
    child.stdout.destroy();
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };
  return { stream: child.stdout, done, stop };
}
