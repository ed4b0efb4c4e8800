import { createHash } from 'node:crypto';
import { constants, createReadStream, lstatSync, readdirSync, readlinkSync } from 'node:fs';
import { open } from 'node:fs/promises';
import path from 'node:path';
import { MANIFEST } from './policy.js';

/**
 * What an unpacked env holds, recorded as it is written and compared by
 * `envs verify` (and, cheaply, before every run) with a fresh walk of the
 * tree: every file's sha256, size, mode and mtime, every directory's mode
 * and mtime, every symlink's target, verbatim. The walk never
 * follows a symlink (lstat, readlink) and reads only regular files, so a
 * symlink pointing anywhere is reported, never read through.
 */

export interface ManifestEntry {
  type: 'file' | 'dir' | 'symlink';
  mode: number;
  size?: number;
  sha256?: string;
  target?: string;
  /** Milliseconds since the epoch, as unpacked (absent in manifests of earlier releases). */
  mtime?: number;
}

export type Manifest = Record<string, ManifestEntry>;

export { MANIFEST };

/** Every entry of the tree under root, read back from disk, each file hashed. */
export function buildManifest(root: string): Promise<Manifest> {
  return walkTree(root, true);
}

/**
 * Every entry's type, mode, size, mtime and symlink target, without opening
 * a file: the cheap check a run makes before its first step (one lstat per
 * entry and one readdir per directory; BENCHMARKS.md, env-check).
 */
export function statTree(root: string): Promise<Manifest> {
  return walkTree(root, false);
}

/** The mtime as recorded: whole milliseconds (what `cp -a` and `rsync -a` keep, so a copied cache still passes). */
const mtimeOf = (st: { mtimeMs: number }) => Math.floor(st.mtimeMs);

async function walkTree(root: string, hash: boolean): Promise<Manifest> {
  const out: Manifest = {};
  // Synchronous readdir and lstat, each name joined to its parent's: the walk of 20 000 files took
  // 2.8 s with an awaited lstat (a round trip through libuv's thread pool per entry) and
  // path.relative per entry, against find's 0.22 s (BENCHMARKS.md, env-check).
  const walk = async (dir: string, relDir: string): Promise<void> => {
    const names = readdirSync(dir).sort();
    for (const name of names) {
      const full = `${dir}/${name}`;
      const rel = relDir === '' ? name : `${relDir}/${name}`;
      if (rel === MANIFEST) continue;
      const st = lstatSync(full);
      const mode = st.mode & 0o7777;
      const mtime = mtimeOf(st);
      if (st.isSymbolicLink()) {
        out[rel] = { type: 'symlink', mode, target: readlinkSync(full), mtime };
      } else if (st.isDirectory()) {
        out[rel] = { type: 'dir', mode, mtime };
        await walk(full, rel);
      } else if (st.isFile()) {
        const e: ManifestEntry = { type: 'file', mode, size: st.size, mtime };
        if (hash) Object.assign(e, await hashFile(full));
        out[rel] = e;
      } else {
        // A FIFO, socket or device someone made after unpacking: reported, never opened.
        out[rel] = { type: 'file', mode, mtime, sha256: `not a regular file (mode ${st.mode.toString(8)})` };
      }
    }
  };
  await walk(path.resolve(root), '');
  return out;
}

async function hashFile(full: string): Promise<{ size: number; sha256: string }> {
  const hash = createHash('sha256');
  let size = 0;
  // O_NOFOLLOW: the file checked by lstat must be the one read.
  const fh = await open(full, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    for await (const chunk of createReadStream('', { fd: fh.fd, autoClose: false })) {
      hash.update(chunk as Buffer);
      size += (chunk as Buffer).length;
    }
  } finally {
    await fh.close();
  }
  return { size, sha256: hash.digest('hex') };
}

/**
 * Differences between a recorded manifest and the tree now: one line each.
 * `now` from statTree compares what stat says (type, size, mode, mtime,
 * symlink target, names); from buildManifest, the content too. A manifest
 * written before mtimes were recorded has none: then a file whose mtime is
 * later than `writtenAt` (the manifest file's own mtime, written after the
 * last file) was changed after unpacking.
 */
export function compareManifests(recorded: Manifest, now: Manifest, writtenAt?: number): string[] {
  const problems: string[] = [];
  const when = (ms: number) => new Date(ms).toISOString();
  for (const [rel, e] of Object.entries(recorded)) {
    const n = now[rel];
    if (!n) problems.push(`${rel}: missing`);
    else if (n.type !== e.type) problems.push(`${rel}: was a ${e.type}, now a ${n.type}`);
    else if (n.sha256 !== undefined && e.sha256 !== n.sha256) problems.push(`${rel}: content changed (sha256 ${e.sha256} recorded, ${n.sha256} now)`);
    else if (e.type === 'file' && e.size !== undefined && n.size !== undefined && e.size !== n.size) problems.push(`${rel}: size ${n.size} bytes, was ${e.size} (content changed)`);
    else if (e.target !== n.target) problems.push(`${rel}: symlink now points to ${n.target}, was ${e.target}`);
    else if (e.mode !== n.mode) problems.push(`${rel}: mode ${n.mode.toString(8)}, was ${e.mode.toString(8)}`);
    else if (e.mtime !== undefined && n.mtime !== undefined && e.mtime !== n.mtime) problems.push(`${rel}: modified ${when(n.mtime)}, was ${when(e.mtime)}`);
    else if (e.mtime === undefined && writtenAt !== undefined && n.mtime !== undefined && n.mtime > writtenAt) problems.push(`${rel}: modified ${when(n.mtime)}, after it was unpacked (${when(writtenAt)})`);
  }
  for (const rel of Object.keys(now)) if (!(rel in recorded)) problems.push(`${rel}: added after unpacking`);
  return problems;
}

/** The recorded manifest with each entry's mtime as it is on disk now (right after unpacking, before the manifest is written). */
export async function withMtimes(root: string, files: Manifest): Promise<Manifest> {
  const now = await statTree(root);
  return Object.fromEntries(Object.entries(files).map(([rel, e]) => [rel, now[rel] ? { ...e, mtime: now[rel]!.mtime } : e]));
}

/** Write the manifest at the root of a freshly unpacked tree; O_EXCL|O_NOFOLLOW: never through anything the archive made. */
export async function writeManifest(root: string, record: object): Promise<void> {
  const fh = await open(path.join(root, MANIFEST), constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o444);
  try {
    await fh.writeFile(JSON.stringify(record));
  } finally {
    await fh.close();
  }
}
