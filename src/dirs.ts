import { mkdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { LeapfrogError } from './errors.js';

/**
 * `mkdir -p` that always ends. Node's own `mkdirSync(dir, { recursive: true })`
 * spins forever at 100% CPU when a parent exists but cannot hold children
 * (a path under /proc, a dangling symlink): it steps back to the parent on
 * ENOENT and forward again on EEXIST (the same loop as
 * https://github.com/oven-sh/bun/pull/36162 describes; Node 20 and 22 share
 * it). Here the walk goes up once to the deepest existing ancestor and
 * then down, one mkdir per missing component, so a refusal is final; and it
 * says what is wrong with the path as an input error naming `what` (the
 * flag or file the directory comes from).
 */
export function makeDirs(dir: string, what: string, mode = 0o700): void {
  const abs = path.resolve(dir);
  const missing: string[] = [];
  let p = abs;
  for (;;) {
    try {
      if (!statSync(p).isDirectory()) throw dirError(what, abs, p, Object.assign(new Error('not a directory'), { code: 'ENOTDIR' }));
      break;
    } catch (err) {
      if (err instanceof LeapfrogError) throw err;
      // ENOTDIR: some ancestor is a file; walking up finds and names it.
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ENOTDIR') throw dirError(what, abs, p, err);
      missing.unshift(p);
      const parent = path.dirname(p);
      if (parent === p) throw dirError(what, abs, p, err);
      p = parent;
    }
  }
  for (const m of missing) {
    try {
      mkdirSync(m, { mode });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EEXIST' && isDir(m)) continue;
      // What refused is the parent (read-only, not writable, cannot hold directories), unless m itself is in the way.
      throw dirError(what, abs, code === 'EEXIST' ? m : path.dirname(m), err);
    }
  }
}

function isDir(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

const REASONS: Record<string, string> = {
  ENOTDIR: 'is a file, not a directory',
  EEXIST: 'is in the way: something that is not a directory (a dangling symlink?)',
  ENOENT: 'cannot hold directories (a special file system such as /proc, or a dangling symlink)',
  EROFS: 'is on a read-only file system',
  EACCES: 'is not writable by this user',
  EPERM: 'does not allow creating directories here (read-only or special file system)',
  ENAMETOOLONG: 'has a name too long for the file system',
  ELOOP: 'has a symlink loop',
};

/** Why a directory cannot be made: an input error for a bad path, unexpected for the machine's own failures (disk full, I/O). */
function dirError(what: string, dir: string, subject: string, err: unknown): LeapfrogError {
  const code = (err as NodeJS.ErrnoException).code ?? '';
  const reason = REASONS[code];
  if (reason === undefined) {
    return new LeapfrogError('unexpected', `${what}: cannot create the directory ${dir}: ${(err as Error).message}`, { cause: err });
  }
  return new LeapfrogError('input', `${what}: cannot create the directory ${dir}: ${subject} ${reason}; choose another directory`, { cause: err });
}
