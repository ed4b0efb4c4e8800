import { lstat, mkdir, mkdtemp, open, readdir, rename, rm, unlink } from 'node:fs/promises';
import { constants } from 'node:fs';
import path from 'node:path';
import { planArchive, streamLimit, DEFAULT_LIMITS, UnsafeTarball } from './extract.js';
import { writePlan } from './writer.js';
import { show } from './policy.js';

/**
 * Applying an image's layers in order into one tree, with the OCI whiteouts
 * (https://github.com/opencontainers/image-spec/blob/main/layer.md,
 * "Whiteouts"): `.wh.NAME` removes NAME of the lower layers, `.wh..wh..opq`
 * empties its directory of what the lower layers put there; both apply only
 * to lower layers, never to entries of their own layer.
 *
 * The extractor's API unpacks one tarball into an empty directory, which
 * does not fit writing over a tree directly, so each layer goes through it
 * unchanged (header pass and writer: no absolute names, no `..`, nothing
 * written through a link of the layer) into a private staging directory,
 * and is then merged into the tree by renames. The merge crosses only real
 * directories of the tree (lstat, never following a symlink): a layer entry
 * below a symlink an earlier layer left is refused, not followed (containerd
 * resolves such parents inside the root; images built from a filesystem diff
 * do not have them, and refusing keeps every write inside the tree by
 * construction). A layer's explicit directory entry replacing a lower symlink
 * or file is allowed, as the spec's "changesets" allow.
 */

const WH = '.wh.';
const OPAQUE = '.wh..wh..opq';

/** A layer path, relative, `/`-separated: is every parent a real directory of `root`? false when one is missing; throws when one is a symlink or file. */
async function parentsAreDirs(root: string, rel: string, what: string): Promise<boolean> {
  const parts = rel.split('/').filter((p) => p !== '');
  for (let i = 1; i < parts.length; i++) {
    const st = await lstat(path.join(root, ...parts.slice(0, i))).catch(() => undefined);
    if (!st) return false;
    if (!st.isDirectory()) throw new UnsafeTarball(`${show(rel)}: ${what} passes through ${show(parts.slice(0, i).join('/'))}, ${st.isSymbolicLink() ? 'a symlink' : 'a file'} of an earlier layer; nothing is written through a link`);
  }
  return true;
}

/** Whiteouts of a staged layer, removed from the staging tree as they are found. */
async function takeWhiteouts(stage: string, rel = '', out: { opaque: string[]; removed: string[] } = { opaque: [], removed: [] }) {
  for (const name of (await readdir(path.join(stage, rel))).sort()) {
    const r = rel === '' ? name : `${rel}/${name}`;
    const st = await lstat(path.join(stage, r));
    if (name === OPAQUE) {
      out.opaque.push(rel);
      await unlink(path.join(stage, r));
    } else if (name.startsWith(WH)) {
      const target = name.slice(WH.length);
      if (target === '' || target === '.' || target === '..') throw new UnsafeTarball(`${show(r)}: a whiteout that names no entry`);
      out.removed.push(rel === '' ? target : `${rel}/${target}`);
      await rm(path.join(stage, r), { recursive: true });
    } else if (st.isDirectory()) {
      await takeWhiteouts(stage, r, out);
    }
  }
  return out;
}

/** Move the staged entries into the tree: directories over directories merge, anything else replaces. */
async function merge(stage: string, root: string, rel: string, explicitDirs: Set<string>): Promise<void> {
  for (const name of (await readdir(path.join(stage, rel))).sort()) {
    const r = rel === '' ? name : `${rel}/${name}`;
    const from = path.join(stage, r);
    const to = path.join(root, r);
    const s = await lstat(from);
    const t = await lstat(to).catch(() => undefined);
    if (s.isDirectory() && t?.isDirectory()) {
      await merge(stage, root, r, explicitDirs);
      // The layer's directory brings its mode, set without following a link (lstat said it is a directory).
      const fh = await open(to, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
      try {
        await fh.chmod(s.mode & 0o7777);
        await fh.utimes(s.atime, s.mtime);
      } finally {
        await fh.close();
      }
      continue;
    }
    if (t && s.isDirectory() && !explicitDirs.has(r)) {
      throw new UnsafeTarball(`${show(r)}/…: the layer's entries pass through ${show(r)}, ${t.isSymbolicLink() ? 'a symlink' : 'a file'} of an earlier layer; nothing is written through a link`);
    }
    if (t) await rm(to, { recursive: true });
    await rename(from, to);
  }
}

/**
 * Apply one layer tarball (tar or tar.gz) onto `root` (a directory, possibly
 * empty). `work` is a private directory for the staging tree. Throws
 * UnsafeTarball or BadArchive (from the extractor) naming the entry.
 */
export async function applyLayer(layer: string, root: string, work: string, signal?: AbortSignal): Promise<{ entries: number; whiteouts: number; opaque: number }> {
  const plan = await planArchive(layer, DEFAULT_LIMITS, { signal });
  const stage = await mkdtemp(path.join(work, 'layer-'));
  try {
    await writePlan(layer, plan, stage, { maxStreamBytes: streamLimit(DEFAULT_LIMITS), signal });
    const explicitDirs = new Set(plan.entries.filter((e) => e.kind === 'dir').map((e) => e.name));
    const wh = await takeWhiteouts(stage);
    for (const dir of wh.opaque) {
      if (dir !== '' && !(await parentsAreDirs(root, `${dir}/x`, 'an opaque directory'))) continue;
      const st = await lstat(path.join(root, dir)).catch(() => undefined);
      if (!st?.isDirectory()) continue;
      for (const name of await readdir(path.join(root, dir))) await rm(path.join(root, dir, name), { recursive: true });
    }
    for (const gone of wh.removed) {
      if (!(await parentsAreDirs(root, gone, 'a whiteout'))) continue;
      // rm with lstat semantics: a symlink is removed, never what it points to.
      await rm(path.join(root, gone), { recursive: true, force: true });
    }
    await mkdir(root, { recursive: true });
    await merge(stage, root, '', explicitDirs);
    return { entries: plan.entries.length, whiteouts: wh.removed.length, opaque: wh.opaque.length };
  } finally {
    await rm(stage, { recursive: true, force: true });
  }
}
