import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, readdir, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import * as tar from 'tar';
import { LeapfrogError } from '../errors.js';
import { clientEnvironment } from '../sandbox/child-env.js';
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
 * Compressed with zstd by default (`compression: 'zstd'`): the tar is
 * written whole, then `zstd -12 -T0` compresses it. zstd decompresses
 * several times faster than inflate, which is what a cold provision waits
 * on. Its output depends on the level and the input, not on the number of
 * threads (zstd.h, ZSTD_c_nbWorkers: multi-threaded compression is
 * deterministic whatever the count of workers >= 1) and holds no name or
 * time, so the same tree still gives the same bytes; `gzip` keeps the
 * tar.gz of earlier releases.
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

export type PackCompression = 'zstd' | 'gzip';

/** The tarball's name for a compression. */
export const TARBALL_SUFFIX: Record<PackCompression, string> = { zstd: '.tar.zst', gzip: '.tar.gz' };

/** zstd's level: 12 packs a root filesystem ~10 % smaller than gzip -6, in about the time mmdebstrap takes to unpack it. */
const ZSTD_LEVEL = 12;

export async function packTree(root: string, file: string, sourceDateEpoch: number, compression: PackCompression = 'zstd'): Promise<Packed> {
  const entries = await treeEntries(root);
  const partial = `${file}.partial`;
  const plain = `${file}.tar-partial`;
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
        file: compression === 'gzip' ? partial : plain,
        cwd: root,
        portable: true,
        noDirRecurse: true,
        ...(compression === 'gzip' ? { gzip: { level: 6, portable: true } } : {}),
        // Called just before each header is made; directories carry no mtime at all when portable.
        onWriteEntry: (e) => {
          const stat = (e as unknown as { stat?: { mtimeMs: number } }).stat;
          if (stat) e.mtime = new Date(Math.min(Math.floor(stat.mtimeMs / 1000) * 1000, limit));
        },
      },
      entries,
    );
    if (compression === 'zstd') {
      // -q: no progress; -f: over a partial left by a killed build; `--`: a name is never an option.
      await execa('zstd', ['-q', '-f', `-${ZSTD_LEVEL}`, '-T0', '-o', partial, '--', plain], { env: clientEnvironment(), extendEnv: false }).catch((err: NodeJS.ErrnoException & { stderr?: string }) => {
        if (err.code === 'ENOENT') throw new LeapfrogError('input', 'envs build compresses with the zstd program, which is not installed (Debian: apt-get install zstd); or build a tar.gz with --compression gzip');
        throw new LeapfrogError('unexpected', `zstd could not compress ${plain}: ${err.stderr?.trim() || err.message}`, { cause: err });
      });
    }
    await rename(partial, file);
  } catch (err) {
    await rm(partial, { force: true });
    throw err;
  } finally {
    await rm(plain, { force: true });
  }
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return { file, sha256: hash.digest('hex'), entries: entries.length };
}
