import { createHash } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { BadArchive, walkArchive, type WalkOptions } from './archive.js';
import type { Manifest } from './manifest.js';
import { show, UnsafeTarball, type Plan, type PlannedEntry } from './policy.js';
import { WritePool } from './write-pool.js';

/**
 * The second pass: write a vetted plan into an empty directory, trusting
 * nothing. The order makes it safe by construction, whatever the filesystem
 * does with names (case folding, Unicode normalisation):
 *
 * 1. every directory, parents first, with mkdir(2), which fails on any name
 *    that exists: no symlink exists yet;
 * 2. files and hard links, in archive order, spread over WRITERS threads, each file
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
 *
 * The system calls are made by writer threads (write-worker.ts), with
 * synchronous calls, while this thread parses and hashes: a file costs its
 * four calls and no promise or thread-pool hop each (16 files in flight
 * through the thread pool cost about twice the CPU of GNU tar on a nova
 * root filesystem, BENCHMARKS.md "provision"). A hard link goes to the
 * thread that wrote its target, after it; each later step starts only once
 * every thread has finished the one before.
 */

const WRITERS = 2;
/** Files up to this size are read whole and sent at once; bigger ones are sent in parts, in order. */
const WHOLE = 4 * 1024 * 1024;

/** A writer thread's failure as the error it is: a name that exists can only come from case or Unicode folding in an empty tree. */
function failureOf(f: NonNullable<WritePool['failure']>): Error {
  if (f instanceof Error) return f;
  if (f.code === 'EEXIST') return new UnsafeTarball(`${show(f.name)}: collides with another entry's name on this filesystem (case or Unicode folding?)`);
  if (f.op === 'link' && f.code === 'EMLINK') return new UnsafeTarball(`${show(f.name)}: more hard links to ${show(f.target ?? '')} than this filesystem allows`);
  return Object.assign(new Error(`${show(f.name)}: ${f.message}`), { code: f.code });
}

function sameHeader(p: PlannedEntry, h: PlannedEntry['header']): boolean {
  return p.header.path === h.path && p.header.type === h.type && p.header.size === h.size && (p.header.linkpath ?? '') === (h.linkpath ?? '') && !h.sparse;
}

export async function writePlan(file: string, plan: Plan, dest: string, o: WalkOptions): Promise<Manifest> {
  if ((await readdir(dest)).length > 0) throw new Error(`${dest} is not empty`);
  const manifest: Manifest = {};
  const umask = process.umask();
  const pool = new WritePool(dest, WRITERS);
  const check = () => {
    if (pool.failure) throw failureOf(pool.failure);
  };
  const mtimeOf = (e: PlannedEntry) => e.mtime?.getTime();
  try {
    for (const d of plan.dirs) pool.add(0, { op: 'mkdir', name: d });
    // Every directory exists before a file is written, by either thread.
    await pool.drain();
    check();

    const symlinks: PlannedEntry[] = [];
    /** Which thread wrote each hard link's target. */
    const owner = new Map<string, number>();
    const writer = (name: string) => {
      const w = pool.choose();
      if (plan.linkTargets.has(name)) owner.set(name, w);
      return w;
    };
    await walkArchive(file, o, async ({ index, header, body, whole }) => {
      check();
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
        pool.add(owner.get(target) ?? 0, { op: 'link', name: p.name, target });
        manifest[p.name] = { ...manifest[target]! };
        return;
      }
      const hash = createHash('sha256');
      const chmod = (p.mode & umask) !== 0;
      if (header.size <= WHOLE) {
        const data = await whole();
        manifest[p.name] = { type: 'file', mode: p.mode, size: data.length, sha256: hash.update(data).digest('hex') };
        pool.add(writer(p.name), { op: 'file', name: p.name, mode: p.mode, chmod, mtime: mtimeOf(p), at: 0, length: 0 }, data);
        await pool.room();
        return;
      }
      // A big file: sent in parts, in order, to one thread, its hash taken on the way.
      const w = writer(p.name);
      pool.add(w, { op: 'open', name: p.name, mode: p.mode });
      let pos = 0;
      for await (const c of body()) {
        hash.update(c);
        pool.add(w, { op: 'part', at: 0, length: 0, pos }, c);
        pos += c.length;
        await pool.room();
        check();
      }
      pool.add(w, { op: 'finish', size: pos, mode: p.mode, chmod, mtime: mtimeOf(p) });
      manifest[p.name] = { type: 'file', mode: p.mode, size: pos, sha256: hash.digest('hex') };
    });
    await pool.drain();
    check();

    // Symlinks once every file and hard link is written, then the directories' own modes and mtimes, deepest first.
    for (const s of symlinks) pool.add(0, { op: 'symlink', name: s.name, target: s.target!, mtime: mtimeOf(s) });
    const attrs = new Map<string, PlannedEntry>();
    for (const e of plan.entries) if (e.kind === 'dir') attrs.set(e.name, e);
    for (const d of [...plan.dirs].reverse()) {
      const e = attrs.get(d);
      const mode = e?.mode ?? 0o755;
      manifest[d] ??= { type: 'dir', mode };
      pool.add(0, { op: 'dir', name: d, mode, mtime: e ? mtimeOf(e) : undefined });
    }
    await pool.drain();
    check();
  } finally {
    // Never leave a write running behind an error: the caller removes `dest` next.
    await pool.close();
  }
  return manifest;
}
