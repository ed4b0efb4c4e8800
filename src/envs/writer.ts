import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { link, lutimes, mkdir, open, readdir, symlink, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { BadArchive, walkArchive, type WalkOptions } from './archive.js';
import type { Manifest } from './manifest.js';
import { show, UnsafeTarball, type Plan, type PlannedEntry } from './policy.js';

/**
 * The second pass: write a vetted plan into an empty directory, trusting
 * nothing. The order makes it safe by construction, whatever the filesystem
 * does with names (case folding, Unicode normalisation):
 *
 * 1. every directory, parents first, with mkdir(2), which fails on any name
 *    that exists: no symlink exists yet;
 * 2. files and hard links, in archive order, up to WRITERS at once, each file
 *    created with O_CREAT|O_EXCL|O_NOFOLLOW (a name that exists, under any
 *    folding, is an error, never a file written through), hard links with
 *    link(2) to a file of this archive already written (link(2) does not
 *    follow its target's symlinks, and none exist yet anyway);
 * 3. symlinks, one by one, with symlink(2), which fails on an existing name
 *    and never follows it, so a later symlink cannot land inside an earlier
 *    one: the parents are the directories of step 1 (GNU tar's "delayed
 *    links" make the same move, src/extract.c);
 * 4. directory modes and mtimes, deepest first, through a descriptor opened
 *    with O_DIRECTORY|O_NOFOLLOW, so not even a chmod follows a link.
 *
 * Every entry read in this pass must match the plan's entry at the same
 * position (path, type, size, target), so the writer can only ever do what
 * the header pass allowed. File modes and mtimes are set on the open
 * descriptor; mtimes matter, since Python trusts a .pyc only while its
 * source's mtime is the one it recorded. Runs of zero bytes in large files
 * become holes, so a tarball of a huge empty file costs no disk.
 */

const WRITERS = 16;
/** Files up to this size are read whole and written by the pool; bigger ones are streamed in order. */
const WHOLE = 4 * 1024 * 1024;
const ZEROS = Buffer.alloc(64 * 1024);
const CREATE = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;

/** A name the filesystem already had when we created it: only case or Unicode folding can cause that in an empty tree. */
function collision(name: string, err: unknown): Error {
  if ((err as NodeJS.ErrnoException).code === 'EEXIST') return new UnsafeTarball(`${show(name)}: collides with another entry's name on this filesystem (case or Unicode folding?)`);
  return err as Error;
}

function sameHeader(p: PlannedEntry, h: PlannedEntry['header']): boolean {
  return p.header.path === h.path && p.header.type === h.type && p.header.size === h.size && (p.header.linkpath ?? '') === (h.linkpath ?? '') && !h.sparse;
}

/** Write `c` at `pos`, leaving 64 KiB runs of zeros as holes (the caller truncates to the full size). */
async function writeSparse(fh: FileHandle, c: Buffer, pos: number): Promise<void> {
  let start = -1;
  for (let off = 0; off <= c.length; off += ZEROS.length) {
    const part = c.subarray(off, off + ZEROS.length);
    const zero = part.length === 0 || part.equals(ZEROS.subarray(0, part.length));
    if (!zero && start < 0) start = off;
    if (zero && start >= 0) {
      await fh.write(c, start, off - start, pos + start);
      start = -1;
    }
  }
  if (start >= 0) await fh.write(c, start, c.length - start, pos + start);
}

async function finishFile(fh: FileHandle, mode: number, mtime: Date | undefined, umask: number): Promise<void> {
  // open(2) applied the umask; the manifest records the exact mode, whatever the umask.
  if ((mode & umask) !== 0) await fh.chmod(mode);
  if (mtime) await fh.utimes(mtime, mtime);
}

export async function writePlan(file: string, plan: Plan, dest: string, o: WalkOptions): Promise<Manifest> {
  if ((await readdir(dest)).length > 0) throw new Error(`${dest} is not empty`);
  const manifest: Manifest = {};
  const umask = process.umask();
  const at = (name: string) => path.join(dest, name);

  for (const d of plan.dirs) await mkdir(at(d), 0o700).catch((e) => Promise.reject(collision(d, e)));

  const pool = new Set<Promise<void>>();
  const written = new Map<string, Promise<void>>();
  const symlinks: PlannedEntry[] = [];
  let failure: unknown;
  const run = async (name: string, work: () => Promise<void>) => {
    while (pool.size >= WRITERS) await Promise.race(pool);
    if (failure) throw failure;
    const p: Promise<void> = work()
      .catch((e) => void (failure ??= collision(name, e)))
      .finally(() => pool.delete(p));
    pool.add(p);
    if (plan.linkTargets.has(name)) written.set(name, p);
  };

  try {
    await walkArchive(file, o, async ({ index, header, body, whole }) => {
      if (failure) throw failure;
      const p = plan.entries[index - 1];
      if (!p || !sameHeader(p, header)) throw new BadArchive(`entry ${index} (${show(header.path)}) is not the one the header pass read; the file changed while it was unpacked`);
      if (p.kind === 'root' || p.kind === 'dir') {
        if (p.kind === 'dir') manifest[p.name] = { type: 'dir', mode: p.mode };
        return;
      }
      if (p.kind === 'symlink') {
        symlinks.push(p);
        manifest[p.name] = { type: 'symlink', mode: 0o777, target: p.target! };
        return;
      }
      if (p.kind === 'hardlink') {
        const target = p.target!;
        await run(p.name, async () => {
          await written.get(target);
          await link(at(target), at(p.name)).catch((e: NodeJS.ErrnoException) => {
            throw e.code === 'EMLINK' ? new UnsafeTarball(`${show(p.name)}: more hard links to ${show(target)} than this filesystem allows`) : e;
          });
          manifest[p.name] = { ...manifest[target]! };
        });
        return;
      }
      const hash = createHash('sha256');
      if (header.size <= WHOLE) {
        const data = await whole();
        manifest[p.name] = { type: 'file', mode: p.mode, size: data.length, sha256: hash.update(data).digest('hex') };
        await run(p.name, async () => {
          const fh = await open(at(p.name), CREATE, p.mode);
          try {
            await fh.writeFile(data);
            await finishFile(fh, p.mode, p.mtime, umask);
          } finally {
            await fh.close();
          }
        });
        return;
      }
      // A big file: streamed in archive order (the parser waits), its hash taken on the way.
      const fh = await open(at(p.name), CREATE, p.mode).catch((e) => Promise.reject(collision(p.name, e)));
      try {
        let pos = 0;
        for await (const c of body()) {
          hash.update(c);
          await writeSparse(fh, c, pos);
          pos += c.length;
        }
        await fh.truncate(pos);
        await finishFile(fh, p.mode, p.mtime, umask);
        manifest[p.name] = { type: 'file', mode: p.mode, size: pos, sha256: hash.digest('hex') };
      } finally {
        await fh.close();
      }
    });
  } finally {
    // Never leave a write running behind an error: the caller removes `dest` next.
    await Promise.allSettled(pool);
  }
  if (failure) throw failure;

  for (const s of symlinks) {
    await symlink(s.target!, at(s.name)).catch((e) => Promise.reject(collision(s.name, e)));
    if (s.mtime) await lutimes(at(s.name), s.mtime, s.mtime);
  }

  const attrs = new Map<string, PlannedEntry>();
  for (const e of plan.entries) if (e.kind === 'dir') attrs.set(e.name, e);
  for (const d of [...plan.dirs].reverse()) {
    const e = attrs.get(d);
    const mode = e?.mode ?? 0o755;
    manifest[d] ??= { type: 'dir', mode };
    const fh = await open(at(d), constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
    try {
      await fh.chmod(mode);
      if (e?.mtime) await fh.utimes(e.mtime, e.mtime);
    } finally {
      await fh.close();
    }
  }
  return manifest;
}
