import { constants } from 'node:fs';
import { open, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';

/**
 * What `envs build` records inside a root filesystem it built (ENV_INFO at
 * the tree's root): how it was built and every package's exact version.
 * Read from the cache with O_NOFOLLOW: an env's tarball decides what that
 * name is, and a symlink there must not make leapfrog read a host file.
 */

/** Not under `.leapfrog-`: the extractor reserves that prefix for what leapfrog itself writes into the cache. */
export const ENV_INFO = 'leapfrog-env.json';

export interface EnvInfo {
  env: string;
  build: Record<string, unknown>;
  packages: { name: string; version: string; arch: string }[];
}

export async function readEnvInfo(root: string): Promise<EnvInfo | undefined> {
  let fh;
  try {
    fh = await open(path.join(root, ENV_INFO), constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch {
    return undefined;
  }
  try {
    const st = await fh.stat();
    if (!st.isFile() || st.size > 16 * 1024 * 1024) return undefined;
    const data = JSON.parse(await fh.readFile('utf8')) as Partial<EnvInfo>;
    if (typeof data !== 'object' || data === null || !Array.isArray(data.packages)) return undefined;
    return { env: String(data.env ?? ''), build: (data.build ?? {}) as Record<string, unknown>, packages: data.packages };
  } catch {
    return undefined;
  } finally {
    await fh.close();
  }
}

/**
 * ENV_INFO written into a tree `envs build` made, as root: whatever the tree
 * put at that name (a package's or a hook's symlink to a host file, a layer's
 * directory) is removed first, and the file is created new (O_EXCL: never
 * through a link, even a dangling one).
 */
export async function writeEnvInfo(root: string, info: EnvInfo): Promise<void> {
  const at = path.join(root, ENV_INFO);
  await rm(at, { recursive: true, force: true });
  await writeFile(at, JSON.stringify(info, null, 1) + '\n', { mode: 0o644, flag: 'wx' });
}
