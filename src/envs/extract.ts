import { createHash } from 'node:crypto';
import { constants, createReadStream } from 'node:fs';
import { chmod, link, lstat, mkdir, open, readdir, readlink, realpath, rm, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import * as tar from 'tar';

/**
 * Unpacking a tarball we do not fully trust. tar's Unpack would strip
 * absolute paths and skip `..` entries with a warning; we refuse the whole
 * tarball instead (an env with a file silently missing is worse than no env),
 * and refuse too what tar does not check: links pointing outside the root,
 * device files and FIFOs, setuid/setgid bits, and a tar bomb's size or entry
 * count. The checks read each header before its entry is written; after the
 * first refusal nothing more is written, reading stops, and the caller
 * removes the directory.
 */

export interface ExtractLimits {
  /** Sum of the entries' declared sizes. */
  maxBytes: number;
  maxEntries: number;
}

/** Generous for a venv (a few GB, a few hundred thousand files); env files cannot raise it, the CLI can. */
export const DEFAULT_LIMITS: ExtractLimits = { maxBytes: 8 * 1024 ** 3, maxEntries: 500_000 };

/** Raised when a tarball is refused; the store turns it into a LeapfrogError naming the env. */
export class UnsafeTarball extends Error {}

const REFUSED_TYPES = new Set(['CharacterDevice', 'BlockDevice', 'FIFO']);

/** Why an entry is refused, or undefined. Pure: the header's path, type, link target and mode. */
export function entryProblem(e: { path: string; type: string; linkpath?: string | undefined; mode?: number | undefined }): string | undefined {
  const p = e.path;
  if (p.startsWith('/') || /^[A-Za-z]:/.test(p)) return `${p}: absolute path`;
  if (p.split(/[\\/]/).includes('..')) return `${p}: ".." in the path`;
  if (REFUSED_TYPES.has(e.type)) return `${p}: ${e.type} entries are not allowed in an env`;
  if (e.mode !== undefined && (e.mode & 0o6000) !== 0) return `${p}: setuid/setgid bit (mode ${(e.mode & 0o7777).toString(8)})`;
  if (e.type === 'SymbolicLink' || e.type === 'Link') {
    const target = e.linkpath ?? '';
    if (target.startsWith('/') || /^[A-Za-z]:/.test(target)) return `${p}: ${e.type === 'Link' ? 'hard link' : 'symlink'} to absolute path ${target}`;
    // A symlink resolves from its own directory, a hard link from the archive root.
    const resolved = path.posix.normalize(e.type === 'Link' ? target : path.posix.join(path.posix.dirname(p), target));
    if (resolved === '..' || resolved.startsWith('../')) return `${p}: ${e.type === 'Link' ? 'hard link' : 'symlink'} to ${target}, outside the env`;
  }
  return undefined;
}

/**
 * Unpack `file` into the empty directory `dest` and return the manifest of
 * what was written, each file hashed as it is written (one pass over the
 * unpacked bytes, no re-reading for the manifest).
 *
 * tar's Parser reads the archive (gzip, pax and long names included); the
 * writing is ours rather than tar's Unpack because a venv is tens of
 * thousands of small files, and Unpack's per-entry bookkeeping (path
 * reservations, a stream per file, utimes) made it 2× slower than GNU tar
 * (bench/provision). Small files are written whole, up to WRITERS at once,
 * so the filesystem's per-file latency overlaps. What Unpack guarded against
 * we check here: `dest` starts empty, so the only symlinks in it are the
 * archive's own, and no entry may be written through one (nor hard-link
 * through one); after the last entry every symlink is resolved for real and
 * must stay inside. Modes are the archive's, less the umask; mtimes are not
 * restored (the cache is content-addressed; nothing reads them).
 */
const WRITERS = 16;
const WHOLE = 4 * 1024 * 1024;
const FILE_TYPES = new Set(['File', 'OldFile', 'ContiguousFile']);

export async function safeExtract(file: string, dest: string, limits: ExtractLimits = DEFAULT_LIMITS): Promise<Manifest> {
  const manifest: Manifest = {};
  // Read once: the umask decides the modes we record, as it decides those the kernel gives.
  const umask = process.umask();
  const symlinks = new Set<string>();
  const dirs = new Map<string, number>([['', 0o755]]);
  const made = new Set<string>(['']);
  let entries = 0;
  let bytes = 0;
  let failure: Error | undefined;
  let inflight = 0;
  const pending = new Set<Promise<void>>();

  const input = createReadStream(file, { highWaterMark: 1024 * 1024 });
  const parser = new tar.Parser({ strict: true });
  const fail = (err: Error) => {
    failure ??= err;
    input.destroy();
  };
  const through = (rel: string): string | undefined => {
    const parts = rel.split('/');
    for (let i = 1; i < parts.length; i++) {
      const prefix = parts.slice(0, i).join('/');
      if (symlinks.has(prefix)) return prefix;
    }
    return undefined;
  };
  const ensureDir = async (rel: string): Promise<void> => {
    if (made.has(rel)) return;
    await mkdir(path.join(dest, rel), { recursive: true, mode: 0o755 });
    // recursive mkdir made every ancestor too.
    for (let r = rel; r !== '' && !made.has(r); r = path.posix.dirname(r) === '.' ? '' : path.posix.dirname(r)) made.add(r);
  };
  const job = (work: () => Promise<void>) => {
    inflight++;
    if (inflight >= WRITERS) input.pause();
    const p = work()
      .catch((err: Error) => fail(err))
      .finally(() => {
        inflight--;
        pending.delete(p);
        if (inflight < WRITERS && !failure) input.resume();
      });
    pending.add(p);
  };
  const parentOf = (rel: string) => (path.posix.dirname(rel) === '.' ? '' : path.posix.dirname(rel));

  parser.on('entry', (entry: tar.ReadEntry) => {
    if (failure) {
      entry.resume();
      return;
    }
    entries++;
    bytes += entry.size ?? 0;
    const problem =
      entryProblem({ path: entry.path, type: entry.type, linkpath: entry.linkpath, mode: entry.mode }) ??
      (entries > limits.maxEntries ? `more than ${limits.maxEntries} entries (limit)` : undefined) ??
      (bytes > limits.maxBytes ? `more than ${limits.maxBytes} bytes unpacked (limit)` : undefined);
    const rel = path.posix.normalize(entry.path).replace(/\/+$/, '');
    const via = problem === undefined && rel !== '.' ? through(rel) : undefined;
    if (problem !== undefined || via !== undefined) {
      entry.resume();
      fail(new UnsafeTarball(problem ?? `${via}: a later entry (${rel}) is written through this symlink`));
      return;
    }
    if (rel === '.' || rel === '') {
      entry.resume();
      return;
    }
    const full = path.join(dest, rel);
    const mode = (entry.mode ?? (entry.type === 'Directory' ? 0o755 : 0o644)) & 0o777 & ~umask;
    if (entry.type === 'Directory') {
      entry.resume();
      dirs.set(rel, mode);
      manifest[rel] = { type: 'dir', mode };
      job(() => ensureDir(rel));
      return;
    }
    if (entry.type === 'SymbolicLink') {
      entry.resume();
      symlinks.add(rel);
      manifest[rel] = { type: 'symlink', mode: 0o777, target: entry.linkpath };
      job(async () => {
        await ensureDir(parentOf(rel));
        await rm(full, { force: true });
        await symlink(entry.linkpath!, full);
      });
      return;
    }
    if (entry.type === 'Link') {
      entry.resume();
      const target = path.posix.normalize(entry.linkpath ?? '');
      const linkVia = target.split('/').includes('..') ? target : through(target + '/x') ?? (symlinks.has(target) ? target : undefined);
      if (linkVia !== undefined) {
        fail(new UnsafeTarball(`${rel}: hard link to ${entry.linkpath} goes through a symlink or ".."`));
        return;
      }
      // A hard link's target is an earlier entry: wait for what is being written now.
      const earlier = [...pending];
      job(async () => {
        await Promise.all(earlier);
        await ensureDir(parentOf(rel));
        await rm(full, { force: true });
        await link(path.join(dest, target), full);
        const t = manifest[target];
        manifest[rel] = t ? { ...t } : { type: 'file', mode };
      });
      return;
    }
    if (!FILE_TYPES.has(entry.type)) {
      entry.resume();
      fail(new UnsafeTarball(`${rel}: ${entry.type} entries are not supported in an env`));
      return;
    }
    const hash = createHash('sha256');
    if ((entry.size ?? 0) <= WHOLE) {
      const chunks: Buffer[] = [];
      entry.on('data', (c: Buffer) => chunks.push(c));
      entry.on('end', () => {
        const body = Buffer.concat(chunks);
        hash.update(body);
        manifest[rel] = { type: 'file', mode, size: body.length, sha256: hash.digest('hex') };
        job(async () => {
          await ensureDir(parentOf(rel));
          await writeFile(full, body, { mode, flag: constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW });
        });
      });
      return;
    }
    // A big file is streamed in order; its bytes are hashed on the way.
    let done!: () => void;
    let broke!: (e: Error) => void;
    const finished = new Promise<void>((res, rej) => {
      done = res;
      broke = rej;
    });
    job(async () => {
      await ensureDir(parentOf(rel));
      const out = (await open(full, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW, mode)).createWriteStream();
      out.on('error', broke);
      let size = 0;
      entry.on('data', (c: Buffer) => {
        hash.update(c);
        size += c.length;
        out.write(c);
      });
      entry.on('end', () => {
        manifest[rel] = { type: 'file', mode, size, sha256: hash.digest('hex') };
        out.end(() => done());
      });
      await finished;
    });
  });

  await new Promise<void>((resolve, reject) => {
    parser.on('error', (err: Error) => {
      fail(err);
      resolve();
    });
    parser.on('end', () => resolve());
    input.on('error', (err) => {
      fail(err);
      resolve();
    });
    input.on('close', () => {
      if (failure) resolve();
    });
    input.on('data', (c) => {
      if (!parser.write(c as Buffer)) input.pause();
    });
    parser.on('drain', () => {
      if (inflight < WRITERS && !failure) input.resume();
    });
    input.on('end', () => parser.end());
    void reject;
  });
  // Let every write finish (or fail) before reporting: the caller removes `dest` next.
  while (pending.size > 0) await Promise.all([...pending]);
  if (failure) throw failure;

  for (const rel of symlinks) {
    const full = path.join(dest, rel);
    const realRoot = await realpath(dest);
    let real: string;
    try {
      real = await realpath(full);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new UnsafeTarball(`${rel}: symlink cannot be resolved (${(err as NodeJS.ErrnoException).code})`);
      real = path.resolve(await realpath(path.dirname(full)), await readlink(full));
    }
    if (real !== realRoot && !real.startsWith(realRoot + path.sep)) throw new UnsafeTarball(`${rel}: symlink to ${await readlink(full)} resolves outside the env`);
  }
  // Directory modes last: a read-only directory must not stop its own entries being written.
  for (const [rel, mode] of [...dirs].sort((a, b) => b[0].length - a[0].length)) if (rel !== '') await chmod(path.join(dest, rel), mode);
  return manifest;
}

export interface ManifestEntry {
  type: 'file' | 'dir' | 'symlink';
  mode: number;
  size?: number;
  sha256?: string;
  target?: string;
}

export type Manifest = Record<string, ManifestEntry>;

export const MANIFEST = '.leapfrog-manifest.json';

/**
 * Every file's sha256, mode and every link's target, relative to root, read
 * back from disk: what `envs verify` compares with the manifest written at
 * unpack time. A symlink that now resolves outside root is reported as such.
 */
export async function buildManifest(root: string): Promise<Manifest> {
  const out: Manifest = {};
  const realRoot = await realpath(root);
  const walk = async (dir: string): Promise<void> => {
    const names = (await readdir(dir)).sort();
    for (const name of names) {
      const full = path.join(dir, name);
      const rel = path.relative(root, full).split(path.sep).join('/');
      if (rel === MANIFEST) continue;
      const st = await lstat(full);
      const mode = st.mode & 0o7777;
      if (st.isSymbolicLink()) {
        const target = await readlink(full);
        const real = path.resolve(await realpath(path.dirname(full)), target);
        if (real !== realRoot && !real.startsWith(realRoot + path.sep)) throw new UnsafeTarball(`${rel}: symlink to ${target} resolves outside the env`);
        out[rel] = { type: 'symlink', mode, target };
      } else if (st.isDirectory()) {
        out[rel] = { type: 'dir', mode };
        await walk(full);
      } else if (st.isFile()) {
        const hash = createHash('sha256');
        for await (const chunk of createReadStream(full)) hash.update(chunk as Buffer);
        out[rel] = { type: 'file', mode, size: st.size, sha256: hash.digest('hex') };
      } else {
        throw new UnsafeTarball(`${rel}: not a file, directory or symlink`);
      }
    }
  };
  await walk(root);
  return out;
}

/** Differences between a recorded manifest and the tree now: one line each. */
export function compareManifests(recorded: Manifest, now: Manifest): string[] {
  const problems: string[] = [];
  for (const [rel, e] of Object.entries(recorded)) {
    const n = now[rel];
    if (!n) problems.push(`${rel}: missing`);
    else if (n.type !== e.type) problems.push(`${rel}: was a ${e.type}, now a ${n.type}`);
    else if (e.sha256 !== n.sha256) problems.push(`${rel}: content changed (sha256 ${e.sha256} recorded, ${n.sha256} now)`);
    else if (e.target !== n.target) problems.push(`${rel}: symlink now points to ${n.target}, was ${e.target}`);
    else if (e.mode !== n.mode) problems.push(`${rel}: mode ${n.mode.toString(8)}, was ${e.mode.toString(8)}`);
  }
  for (const rel of Object.keys(now)) if (!(rel in recorded)) problems.push(`${rel}: added after unpacking`);
  return problems;
}
