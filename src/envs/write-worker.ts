import { closeSync, constants, fchmodSync, ftruncateSync, futimesSync, linkSync, lutimesSync, mkdirSync, openSync, symlinkSync, writeSync } from 'node:fs';
import path from 'node:path';
import { parentPort, workerData } from 'node:worker_threads';

/**
 * A writer thread of writer.ts: it performs, in order and with plain
 * synchronous system calls, the operations the main thread sends in
 * batches, so a file costs its four calls (open, write, futimes, close) and
 * nothing else: no thread-pool hop and no promise per call, while the main
 * thread goes on parsing and hashing the next entries (GNU tar writes with
 * synchronous calls too, src/extract.c). It decides nothing: what to write,
 * where and in which order is the plan's, checked by the main thread; the
 * flags and order that make the writes safe are the ones writer.ts
 * describes (O_EXCL|O_NOFOLLOW, directories with mkdir(2), symlinks last).
 *
 * Every name is relative to `workerData.dest`. A batch's file contents are
 * one transferred buffer; each op names its slice. The first failure is
 * answered for its batch and every later one, and nothing more is written.
 */

export type WriteOp =
  | { op: 'mkdir'; name: string }
  /** A whole file: created, written (runs of zeros left as holes), mode and mtime set, closed. */
  | { op: 'file'; name: string; mode: number; chmod: boolean; mtime: number | undefined; at: number; length: number }
  /** A big file, in parts: opened, written part by part, then finished. */
  | { op: 'open'; name: string; mode: number }
  | { op: 'part'; at: number; length: number; pos: number }
  | { op: 'finish'; size: number; mode: number; chmod: boolean; mtime: number | undefined }
  | { op: 'link'; name: string; target: string }
  | { op: 'symlink'; name: string; target: string; mtime: number | undefined }
  /** A directory's own mode and mtime, through a descriptor that follows no link. */
  | { op: 'dir'; name: string; mode: number; mtime: number | undefined };

export interface WriteBatch {
  id: number;
  ops: WriteOp[];
  data: ArrayBuffer;
}

export interface WriteAnswer {
  id: number;
  /** The op that failed first, what it named, and the system error. */
  error?: { op: WriteOp['op']; name: string; target: string | undefined; code: string | undefined; message: string } | undefined;
}

const CREATE = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;
const ZERO_RUN = 64 * 1024;
const ZEROS = Buffer.alloc(ZERO_RUN);

const dest = (workerData as { dest: string }).dest;
const at = (name: string) => path.join(dest, name);

/** Write `c` at `pos`, leaving 64 KiB runs of zeros as holes (the file is truncated to its full size when finished). */
function writeSparse(fd: number, c: Buffer, pos: number): void {
  let start = -1;
  for (let off = 0; off <= c.length; off += ZERO_RUN) {
    const part = c.subarray(off, off + ZERO_RUN);
    const zero = part.length === 0 || part.equals(ZEROS.subarray(0, part.length));
    if (!zero && start < 0) start = off;
    if (zero && start >= 0) {
      writeAll(fd, c.subarray(start, off), pos + start);
      start = -1;
    }
  }
  if (start >= 0) writeAll(fd, c.subarray(start), pos + start);
}

function writeAll(fd: number, b: Buffer, pos: number): void {
  for (let done = 0; done < b.length; ) done += writeSync(fd, b, done, b.length - done, pos + done);
}

function finish(fd: number, mode: number, chmod: boolean, mtime: number | undefined): void {
  // open(2) applied the umask; the manifest records the exact mode, whatever the umask.
  if (chmod) fchmodSync(fd, mode);
  if (mtime !== undefined) futimesSync(fd, mtime / 1000, mtime / 1000);
}

let failed: WriteAnswer['error'];
let open: { fd: number; name: string } | undefined;

function run(o: WriteOp, data: Buffer): void {
  switch (o.op) {
    case 'mkdir':
      mkdirSync(at(o.name), 0o700);
      return;
    case 'file': {
      const fd = openSync(at(o.name), CREATE, o.mode);
      try {
        // Written whole: only big files (sent in parts) are scanned for holes.
        writeAll(fd, data.subarray(o.at, o.at + o.length), 0);
        finish(fd, o.mode, o.chmod, o.mtime);
      } finally {
        closeSync(fd);
      }
      return;
    }
    case 'open':
      open = { fd: openSync(at(o.name), CREATE, o.mode), name: o.name };
      return;
    case 'part':
      writeSparse(open!.fd, data.subarray(o.at, o.at + o.length), o.pos);
      return;
    case 'finish': {
      const { fd } = open!;
      open = undefined;
      try {
        ftruncateSync(fd, o.size);
        finish(fd, o.mode, o.chmod, o.mtime);
      } finally {
        closeSync(fd);
      }
      return;
    }
    case 'link':
      linkSync(at(o.target), at(o.name));
      return;
    case 'symlink':
      symlinkSync(o.target, at(o.name));
      if (o.mtime !== undefined) lutimesSync(at(o.name), o.mtime / 1000, o.mtime / 1000);
      return;
    case 'dir': {
      const fd = openSync(at(o.name), constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
      try {
        fchmodSync(fd, o.mode);
        if (o.mtime !== undefined) futimesSync(fd, o.mtime / 1000, o.mtime / 1000);
      } finally {
        closeSync(fd);
      }
    }
  }
}

parentPort!.on('message', (b: WriteBatch) => {
  if (!failed) {
    const data = Buffer.from(b.data);
    for (const o of b.ops) {
      try {
        run(o, data);
      } catch (err) {
        const e = err as NodeJS.ErrnoException;
        const name = 'name' in o ? o.name : (open?.name ?? '');
        failed = { op: o.op, name, target: 'target' in o ? o.target : undefined, code: e.code, message: e.message };
        if (open) closeSync(open.fd);
        open = undefined;
        break;
      }
    }
  }
  parentPort!.postMessage({ id: b.id, error: failed } satisfies WriteAnswer);
});
