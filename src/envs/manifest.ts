import { createHash } from 'node:crypto';
import { constants, createReadStream } from 'node:fs';
import { lstat, open, readdir, readlink } from 'node:fs/promises';
import path from 'node:path';
import { MANIFEST } from './policy.js';

/**
 * What an unpacked env holds, recorded as it is written and compared by
 * `envs verify` with a fresh walk of the tree: every file's sha256 and mode,
 * every directory's mode, every symlink's target, verbatim. The walk never
 * follows a symlink (lstat, readlink) and reads only regular files, so a
 * symlink pointing anywhere is reported, never read through.
 */

export interface ManifestEntry {
  type: 'file' | 'dir' | 'symlink';
  mode: number;
  size?: number;
  sha256?: string;
  target?: string;
}

export type Manifest = Record<string, ManifestEntry>;

export { MANIFEST };

/** Every entry of the tree under root, read back from disk. */
export async function buildManifest(root: string): Promise<Manifest> {
  const out: Manifest = {};
  const walk = async (dir: string): Promise<void> => {
    const names = (await readdir(dir)).sort();
    for (const name of names) {
      const full = path.join(dir, name);
      const rel = path.relative(root, full).split(path.sep).join('/');
      if (rel === MANIFEST) continue;
      const st = await lstat(full);
      const mode = st.mode & 0o7777;
      if (st.isSymbolicLink()) {
        out[rel] = { type: 'symlink', mode, target: await readlink(full) };
      } else if (st.isDirectory()) {
        out[rel] = { type: 'dir', mode };
        await walk(full);
      } else if (st.isFile()) {
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
        out[rel] = { type: 'file', mode, size, sha256: hash.digest('hex') };
      } else {
        // A FIFO, socket or device someone made after unpacking: reported, never opened.
        out[rel] = { type: 'file', mode, sha256: `not a regular file (mode ${st.mode.toString(8)})` };
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

/** Write the manifest at the root of a freshly unpacked tree; O_EXCL|O_NOFOLLOW: never through anything the archive made. */
export async function writeManifest(root: string, record: object): Promise<void> {
  const fh = await open(path.join(root, MANIFEST), constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o444);
  try {
    await fh.writeFile(JSON.stringify(record));
  } finally {
    await fh.close();
  }
}
