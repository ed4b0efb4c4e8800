import { existsSync } from 'node:fs';
import { chmod, lstat, mkdir, mkdtemp, readdir, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { stringify } from 'yaml';
import { LeapfrogError } from '../errors.js';
import { clientEnvironment } from '../sandbox/child-env.js';
import { archiveDate, installedPackages, runMmdebstrap, sourceLines, type DebianBuild } from './build-debian.js';
import { ENV_INFO, writeEnvInfo } from './info.js';
import { buildFromImage, envOf } from './oci.js';
import { packTree, TARBALL_SUFFIX, type PackCompression } from './pack.js';

/**
 * `leapfrog envs build`: a tree (built from a Debian suite, or given) packed
 * into a deterministic env tarball, with the env file that names it. The
 * env file and the tarball land side by side in the output directory; the
 * env file's `source.file` is relative, so the pair can be moved together.
 *
 * A built root filesystem carries ENV_INFO at its root: how it was built and
 * the exact version of every package in it, so what a step ran on can be
 * read back from the cache (`envs list`) long after the build.
 */

export { ENV_INFO };

export type BuildFrom = { kind: 'debian'; debian: DebianBuild } | { kind: 'dir'; dir: string } | { kind: 'oci'; archive: string };

export interface BuildRequest {
  name: string;
  from: BuildFrom;
  outDir: string;
  /** Seconds since the epoch; default: the archive's date (Debian) or the tree's newest mtime (dir). */
  sourceDateEpoch: number | undefined;
  log: (line: string) => void;
  signal?: AbortSignal | undefined;
  /** zstd (NAME.tar.zst) unless told gzip (NAME.tar.gz). */
  compression?: PackCompression | undefined;
}

export interface BuildResult {
  name: string;
  envFile: string;
  tarball: string;
  sha256: string;
  entries: number;
  sourceDateEpoch: number;
  packages: { name: string; version: string; arch: string }[];
}

async function newestMtime(root: string): Promise<number> {
  let newest = 0;
  const walk = async (dir: string): Promise<void> => {
    for (const name of await readdir(dir)) {
      const st = await lstat(path.join(dir, name));
      newest = Math.max(newest, Math.floor(st.mtimeMs / 1000));
      if (st.isDirectory()) await walk(path.join(dir, name));
    }
  };
  await walk(root);
  return newest;
}

/** Remove a build tree without ever crossing into a filesystem mounted inside it (a build killed with /proc still mounted). */
async function removeTree(dir: string): Promise<void> {
  if (!existsSync(dir)) return;
  await execa('rm', ['-rf', '--one-file-system', '--', dir], { env: clientEnvironment(), extendEnv: false, reject: false });
}

export async function buildEnv(req: BuildRequest): Promise<BuildResult> {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(req.name)) throw new LeapfrogError('input', `--name ${req.name}: an env name is letters, digits, ".", "_" and "-"`);
  await mkdir(req.outDir, { recursive: true });
  const compression = req.compression ?? 'zstd';
  const tarball = path.join(req.outDir, `${req.name}${TARBALL_SUFFIX[compression]}`);
  const envFile = path.join(req.outDir, `${req.name}.yaml`);
  const work = await mkdtemp(path.join(req.outDir, `.${req.name}.build-`));
  // Traversable by apt's _apt user, so apt downloads into the tree with its privileges dropped
  // (otherwise apt warns "Download is performed unsandboxed as root").
  await chmod(work, 0o755);
  try {
    let root: string;
    let sde: number;
    let packages: BuildResult['packages'] = [];
    let build: Record<string, unknown>;
    let envPath: string[] = [];
    let vars: Record<string, string> = {};
    if (req.from.kind === 'debian') {
      const b = req.from.debian;
      sde = req.sourceDateEpoch ?? (await archiveDate(b, work, req.signal));
      root = path.join(work, 'root');
      req.log(`mmdebstrap ${b.suite} (${b.variant}) with ${b.packages.join(', ') || 'no extra packages'}, source date ${new Date(sde * 1000).toISOString()}`);
      await runMmdebstrap(b, root, sde, req.log, req.signal);
      packages = await installedPackages(root);
      build = { debian: b.suite, packages: [...b.packages], mirror: b.mirror, components: [...b.components], variant: b.variant, updates: b.updates, sources: sourceLines(b), sourceDateEpoch: sde };
      await writeEnvInfo(root, { env: req.name, build, packages });
    } else if (req.from.kind === 'oci') {
      root = path.join(work, 'root');
      const archive = req.from.archive;
      const image = await buildFromImage(archive, root, work, req.log, req.signal);
      ({ path: envPath, vars } = envOf(archive, image.config.env));
      const created = image.config.created ? Math.floor(Date.parse(image.config.created) / 1000) : NaN;
      sde = req.sourceDateEpoch ?? (Number.isFinite(created) && created > 0 ? created : await newestMtime(root));
      const { user, workingDir } = image.config;
      // Steps run as the user leapfrog runs as, with no capabilities, in a read-only tree; the sandbox
      // maps no other user, so the image's User is recorded, not switched to. Steps start in the run's
      // work directory (templates name it), so WorkingDir is recorded for people and scripts.
      if (user !== '' && !/^(root|0)(:(root|0))?$/.test(user)) req.log(`the image's User is ${user}: steps run as the user leapfrog runs as, with every capability dropped, in a read-only tree`);
      build = { oci: path.basename(archive), format: image.format, digest: image.digest, layers: image.layers.length, env: image.config.env, workingDir, user, sourceDateEpoch: sde };
      await writeEnvInfo(root, { env: req.name, build, packages });
    } else {
      root = path.resolve(req.from.dir);
      const st = await stat(root).catch(() => undefined);
      if (!st?.isDirectory()) throw new LeapfrogError('input', `--dir ${req.from.dir}: not a directory`);
      sde = req.sourceDateEpoch ?? (await newestMtime(root));
      build = { dir: path.basename(root), sourceDateEpoch: sde };
    }
    req.log(`packing ${root}`);
    const packed = await packTree(root, tarball, sde, compression);
    const doc = {
      env: req.name,
      kind: 'rootfs',
      description:
        req.from.kind === 'debian'
          ? `Debian ${req.from.debian.suite} root filesystem built by leapfrog envs build`
          : req.from.kind === 'oci'
            ? `root filesystem of the image ${path.basename(req.from.archive)} built by leapfrog envs build`
            : `root filesystem packed from ${path.basename(root)} by leapfrog envs build`,
      source: { file: path.basename(tarball), sha256: packed.sha256 },
      path: envPath,
      ...(Object.keys(vars).length > 0 ? { vars } : {}),
      build,
    };
    await writeFile(envFile, stringify(doc));
    return { name: req.name, envFile, tarball, sha256: packed.sha256, entries: packed.entries, sourceDateEpoch: sde, packages };
  } finally {
    await removeTree(work);
  }
}
