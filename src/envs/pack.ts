import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, readdir, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import * as tar from 'tar';
import { LeapfrogError } from '../errors.js';
import { MANIFEST } from './policy.js';

/**
 * An env tarball of a directory tree, the same bytes for the same tree
 * whenever and wherever it is packed (https://reproducible-builds.org/docs/archives/):
 * entries in sorted order (node-tar is given the list, never left to
 * readdir's order), portable headers (no owners, user names, atime, ctime,
 * device or inode numbers: everything unpacks as whoever unpacks it), file
 * mtimes truncated to the second and clamped to the source date
 * (https://reproducible-builds.org/specs/source-date-epoch/), and a gzip
 * header without a timestamp. Clamping instead of overwriting keeps the
 * mtimes a package shipped: Python trusts a timestamp .pyc only while its
 * source's mtime is the one recorded in it.
 *
 * What an env may hold is what the extractor accepts (policy.ts): files,
 * directories, symlinks, hard links. The contents of `dev/` are left out (a
 * root filesystem's device nodes; the sandbox mounts its own /dev); any
 * other device, FIFO or socket is refused by name.
 */

export interface Packed {
  file: string;
  sha256: string;
  entries: number;
}

/** Every path under root, parents before children, names sorted; `dev/*` skipped. */
export async function treeEntries(root: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (rel: string): Promise<void> => {
    const names = (await readdir(path.join(root, rel))).sort();
    for (const name of names) {
      const r = rel === '' ? name : `${rel}/${name}`;
      if (rel === '' && name.startsWith('.leapfrog-')) {
        throw new LeapfrogError('input', `${path.join(root, r)}: names starting with .leapfrog- at an env's root are leapfrog's own (the cache writes ${MANIFEST} there), and provisioning would refuse the tarball; remove it and pack again`);
      }
      const st = await lstat(path.join(root, r));
      if (st.isDirectory()) {
        out.push(r);
        if (r !== 'dev') await walk(r);
      } else if (st.isFile() || st.isSymbolicLink()) {
        out.push(r);
      } else {
        throw new LeapfrogError('input', `${path.join(root, r)} is a device, FIFO or socket; an env may hold only files, directories and links. Remove it (or put it under dev/, which is left out) and pack again`);
      }
    }
  };
  await walk('');
  return out;
}

export async function packTree(root: string, file: string, sourceDateEpoch: number): Promise<Packed> {
  const entries = await treeEntries(root);
  const partial = `${file}.partial`;
  const limit = Math.floor(sourceDateEpoch) * 1000;
  try {
    // Synchronous: node-tar 7's async packer never settles when a listed
    // file is a hard link of an earlier one (packing Debian bookworm stops at
    // usr/bin/perl5.36.0, a link of usr/bin/perl, and the promise hangs);
    // the sync packer writes the link entry. Building is a one-off command,
    // so blocking the event loop while it packs costs nothing.
    tar.create(
      {
        sync: true,
        file: partial,
        cwd: root,
        portable: true,
        noDirRecurse: true,
        gzip: { level: 6, portable: true },
        // Called just before each header is made; directories carry no mtime at all when portable.
        onWriteEntry: (e) => {
          const stat = (e as unknown as { stat?: { mtimeMs: number } }).stat;
          if (stat) e.mtime = new Date(Math.min(Math.floor(stat.mtimeMs / 1000) * 1000, limit));
        },
      },
      entries,
    );
    await rename(partial, file);
  } catch (err) {
    await rm(partial, { force: true });
    throw err;
  }
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return { file, sha256: hash.digest('hex'), entries: entries.length };
}
