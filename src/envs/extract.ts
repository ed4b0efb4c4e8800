import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, readdir, readlink, realpath } from 'node:fs/promises';
import path from 'node:path';
import * as tar from 'tar';

/**
 * Unpacking a tarball we do not fully trust. tar already strips absolute
 * paths and skips `..` entries with a warning; we refuse the whole tarball
 * instead (an env with a file silently missing is worse than no env), and add
 * what tar does not check: links pointing outside the root, device files and
 * FIFOs, setuid/setgid bits, and a tar bomb's size or entry count. The
 * checks read the headers before an entry is written; after the first
 * refusal nothing more is written and the caller removes the directory.
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

export async function safeExtract(file: string, dest: string, limits: ExtractLimits = DEFAULT_LIMITS): Promise<void> {
  let refusal: string | undefined;
  let stop: (err: Error) => void = () => undefined;
  let entries = 0;
  let bytes = 0;
  const unpack = new tar.Unpack({
    cwd: dest,
    strict: true,
    preserveOwner: false,
    filter: (_p, entry) => {
      if (refusal !== undefined) return false;
      const e = entry as tar.ReadEntry;
      entries++;
      bytes += e.size ?? 0;
      refusal =
        entryProblem({ path: e.path, type: e.type, linkpath: e.linkpath, mode: e.mode }) ??
        (entries > limits.maxEntries ? `more than ${limits.maxEntries} entries (limit)` : undefined) ??
        (bytes > limits.maxBytes ? `more than ${limits.maxBytes} bytes unpacked (limit)` : undefined);
      // Stop reading at the first refusal: a tar bomb must not be decompressed to its end.
      if (refusal !== undefined) stop(new UnsafeTarball(refusal));
      return refusal === undefined;
    },
  });
  await new Promise<void>((resolve, reject) => {
    const input = createReadStream(file);
    stop = (err) => {
      input.unpipe(unpack);
      input.destroy();
      // Report once tar has settled, so no write of an earlier entry lands
      // after the caller removed the directory.
      let done = false;
      const settle = () => {
        if (!done) reject(err);
        done = true;
      };
      unpack.removeAllListeners('error');
      unpack.removeAllListeners('close');
      unpack.on('error', settle);
      unpack.on('close', settle);
      unpack.end();
    };
    input.on('error', reject);
    unpack.on('error', (err: Error & { code?: string; path?: string }) => {
      // tar's own guard against writing through a symlink that an earlier
      // entry planted (an escape our lexical check cannot see): a refusal, not a corrupt file.
      if (err.code === 'TAR_SYMLINK_ERROR') {
        const link = err.path ? path.relative(dest, err.path) : 'a symlink';
        reject(new UnsafeTarball(`${link}: a later entry is written through this symlink (tar: ${err.message.replace(/^TAR_SYMLINK_ERROR: /, '')})`));
      } else reject(err);
    });
    unpack.on('close', () => resolve());
    input.pipe(unpack);
  });
  if (refusal !== undefined) throw new UnsafeTarball(refusal);
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
 * Every file's sha256, mode and every link's target, relative to root. Also
 * the last line of defence for links: a symlink whose real target lies
 * outside root (through another symlink the lexical check could not see) is
 * refused here, before the tree enters the cache.
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
