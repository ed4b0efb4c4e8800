import { existsSync, lstatSync, readdirSync, readlinkSync } from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { LeapfrogError } from '../errors.js';
import { SYSTEM_PATH } from './child-env.js';

/**
 * The sandbox of a `kind: rootfs` env: bubblewrap
 * (https://github.com/containers/bubblewrap, bwrap(1)) runs the step with
 * the env's tree as `/`, read-only, and nothing of the host but what the
 * step needs, bound at the same absolute paths as on the host, so the argv
 * and the rendered config files name the same places inside and out.
 *
 * A read-only bind of the tree on `/` would leave no way to create those
 * mount points (bwrap's mkdir fails on a read-only filesystem, and making
 * them in the tree would change the cache). So `/` stays bwrap's own tmpfs:
 * each top-level entry of the tree is bound read-only on it (symlinks such as
 * /bin -> usr/bin recreated as symlinks), a directory on the way to a bound
 * host path is made on the tmpfs and its own entries bound one by one, and
 * `--remount-ro /` ends the setup, so nothing can write to `/` (flatpak
 * builds its runtime roots the same way). /proc is a fresh procfs, /dev
 * bwrap's minimal one, /tmp a private tmpfs. The cache is never bound
 * writable: only the env's own entries, read-only, so a step cannot change
 * any env (safe by construction, not by a check of what it does). All
 * capabilities are dropped, so even uid 0 inside cannot remount anything.
 */

export interface Bind {
  /** Absolute path inside the sandbox; the host path of the same name unless `from` says otherwise. */
  path: string;
  writable: boolean;
  /** The host file shown at `path` (the sandbox's /etc/resolv.conf). */
  from?: string;
}

export interface RootfsSandbox {
  /** The env's unpacked tree. */
  root: string;
  binds: readonly Bind[];
  /** Share the host's network (TCP targets); false: a network namespace of its own. */
  network: boolean;
  /** Paths no writable bind may be or contain: the env cache, the ledger. */
  protect: readonly string[];
}

/** Entries of the tree replaced by the sandbox's own mounts. */
const OWN = new Set(['proc', 'dev', 'tmp']);
const MANIFEST = '.leapfrog-manifest.json';

const within = (p: string, dir: string) => p === dir || p.startsWith(dir.endsWith('/') ? dir : dir + '/');

/** bwrap's options (everything before the command) for one step. */
export function bwrapOptions(s: RootfsSandbox, cwd: string): string[] {
  const binds = [...new Map(s.binds.map((b) => [path.resolve(b.path), { path: path.resolve(b.path), writable: b.writable, from: b.from ?? path.resolve(b.path) }])).values()];
  for (const b of binds) {
    if (b.path === '/') throw new LeapfrogError('input', 'a rootfs env cannot bind the host\'s / into its sandbox');
    if (!b.writable) continue;
    const hit = s.protect.find((p) => within(p, b.path));
    if (hit) {
      throw new LeapfrogError('input', `a step of a rootfs env would get ${b.path} writable, which ${b.path === hit ? 'is' : 'holds'} ${hit} (the env cache or the ledger); put the target's files elsewhere`);
    }
    if (['proc', 'dev'].includes(b.path.split('/')[1]!)) throw new LeapfrogError('input', `${b.path}: cannot be bound into a sandbox, whose /proc and /dev are its own`);
  }
  const args = ['--unshare-all', ...(s.network ? ['--share-net'] : []), '--die-with-parent', '--cap-drop', 'ALL', '--proc', '/proc', '--dev', '/dev', '--tmpfs', '/tmp'];
  const walk = (rel: string): void => {
    for (const name of readdirSync(path.join(s.root, rel)).sort()) {
      const r = rel === '' ? name : `${rel}/${name}`;
      if (rel === '' && (OWN.has(name) || name === MANIFEST)) continue;
      const inside = '/' + r;
      const host = path.join(s.root, r);
      const st = lstatSync(host);
      const below = binds.filter((b) => within(b.path, inside));
      if (below.length === 0) {
        args.push(...(st.isSymbolicLink() ? ['--symlink', readlinkSync(host), inside] : ['--ro-bind', host, inside]));
      } else if (below.some((b) => b.path === inside)) {
        // The host path replaces the env's entry of the same name.
      } else if (st.isDirectory()) {
        args.push('--dir', inside);
        walk(r);
      } else {
        throw new LeapfrogError('input', `the env's ${inside} is not a directory, so ${below[0]!.path} cannot be bound at the same path inside its sandbox; use a state directory or target elsewhere`);
      }
    }
  };
  walk('');
  for (const b of binds.sort((x, y) => (x.path < y.path ? -1 : 1))) args.push(b.writable ? '--bind' : '--ro-bind', b.from, b.path);
  args.push('--remount-ro', '/', '--chdir', cwd);
  return args;
}

/** bwrap on the PATH leapfrog was started with (an operator may put a newer one first). */
export function findBwrap(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const dirs = (env.PATH ?? '').split(':').filter((d) => path.isAbsolute(d));
  return dirs.map((d) => path.join(d, 'bwrap')).find((f) => existsSync(f));
}

const INSTALL = 'install bubblewrap (Debian, Ubuntu: apt-get install bubblewrap; Fedora, RHEL: dnf install bubblewrap)';

/**
 * Whether rootfs envs can run here: bwrap is found and can build a sandbox
 * (it needs root, or unprivileged user namespaces: kernel.unprivileged_userns_clone,
 * user.max_user_namespaces, and on Ubuntu 24.04 an AppArmor profile).
 * Resolves to the binary, or to a sentence saying what to install or enable.
 */
export async function probeBubblewrap(env: NodeJS.ProcessEnv = process.env): Promise<{ bwrap: string } | { why: string }> {
  const bwrap = findBwrap(env);
  if (!bwrap) return { why: `bwrap was not found on PATH: rootfs envs run their steps under bubblewrap; ${INSTALL}` };
  const r = await execa(bwrap, ['--unshare-all', '--die-with-parent', '--cap-drop', 'ALL', '--ro-bind', '/', '/', '--proc', '/proc', '--dev', '/dev', 'true'], {
    reject: false,
    stdin: 'ignore',
    env: { PATH: SYSTEM_PATH.join(':') },
    extendEnv: false,
  });
  if (r.exitCode === 0) return { bwrap };
  const said = String(r.stderr ?? '').trim() || String(r.shortMessage ?? `exit ${r.exitCode}`);
  return {
    why: `${bwrap} cannot create a sandbox on this machine (${said}); run leapfrog as root, or enable unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1, user.max_user_namespaces > 0; on Ubuntu 24.04 also kernel.apparmor_restrict_unprivileged_userns=0 or an AppArmor profile for bwrap)`,
  };
}
