import { createHash } from 'node:crypto';
import { constants, createReadStream } from 'node:fs';
import { lstat, mkdir, open } from 'node:fs/promises';
import path from 'node:path';
import { LeapfrogError } from '../errors.js';
import { BadArchive, safeExtract, UnsafeTarball } from './extract.js';
import { applyLayer } from './layers.js';
import { normalise } from './policy.js';

/**
 * An OCI image layout (https://github.com/opencontainers/image-spec/blob/main/image-layout.md:
 * oci-layout, index.json, blobs/sha256/…) or a `docker save` archive
 * (manifest.json naming the config and the layer tars), as a directory or a
 * tar of one, turned into a root filesystem: every blob checked against its
 * digest before it is used (for `docker save`, the config against its file
 * name and the layers against the config's rootfs.diff_ids), the layers
 * applied in order (layers.ts), the config's Env, WorkingDir and User read
 * (https://github.com/opencontainers/image-spec/blob/main/config.md).
 *
 * A tar archive is unpacked first with the safe extractor, like any env.
 * Files of the layout are read only through real directories and opened with
 * O_NOFOLLOW: a symlink in an archive must not make leapfrog read a host file.
 */

export interface ImageConfig {
  env: string[];
  workingDir: string;
  user: string;
  created: string | undefined;
}

export interface Image {
  format: 'oci' | 'docker';
  /** The manifest's digest (OCI) or the config's (docker save). */
  digest: string;
  layers: string[];
  config: ImageConfig;
}

type Json = Record<string, any>;
const DIGEST = /^sha256:([0-9a-f]{64})$/;

const bad = (archive: string, why: string) => new LeapfrogError('input', `--oci ${archive}: ${why}`);

/** The path of `rel` inside `root`, every component a real directory or file (no symlinks), or an error. */
async function inside(archive: string, root: string, rel: string): Promise<string> {
  const n = normalise(rel);
  if ('problem' in n || n.name === '') throw bad(archive, `${rel}: not a file inside the image (${'problem' in n ? n.problem : 'empty'})`);
  const parts = n.name.split('/');
  for (let i = 1; i <= parts.length; i++) {
    const st = await lstat(path.join(root, ...parts.slice(0, i))).catch(() => undefined);
    if (!st) throw bad(archive, `${n.name}: missing from the image`);
    if (st.isSymbolicLink()) throw bad(archive, `${n.name}: ${parts.slice(0, i).join('/')} is a symlink; the image's own files are read only as regular files`);
    if (i === parts.length && !st.isFile()) throw bad(archive, `${n.name}: not a regular file`);
  }
  return path.join(root, n.name);
}

async function sha256Of(file: string): Promise<string> {
  const fh = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    const hash = createHash('sha256');
    for await (const c of createReadStream('', { fd: fh.fd, autoClose: false })) hash.update(c as Buffer);
    return hash.digest('hex');
  } finally {
    await fh.close();
  }
}

async function readJson(archive: string, file: string, rel: string): Promise<Json> {
  const fh = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    if ((await fh.stat()).size > 16 * 1024 * 1024) throw bad(archive, `${rel}: larger than 16 MiB, not an image's JSON`);
    const v = JSON.parse(await fh.readFile('utf8')) as unknown;
    if (typeof v !== 'object' || v === null) throw new Error('not a JSON object or array');
    return v as Json;
  } catch (e) {
    if (e instanceof LeapfrogError) throw e;
    throw bad(archive, `${rel}: ${(e as Error).message}`);
  }
}

/** A blob of the layout, its sha256 checked against the digest that names it. */
async function blob(archive: string, root: string, digest: unknown, what: string): Promise<string> {
  const m = DIGEST.exec(String(digest));
  if (!m) throw bad(archive, `${what}: digest ${String(digest)} is not sha256:<64 hex digits> (only sha256 is supported)`);
  const file = await inside(archive, root, `blobs/sha256/${m[1]}`);
  const got = await sha256Of(file);
  if (got !== m[1]) throw bad(archive, `${what}: blobs/sha256/${m[1]} has sha256 ${got}, not the digest that names it; the image is corrupt or was altered`);
  return file;
}

const GOARCH: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64' };

/** The one image manifest an index names: the only one, or the one for linux on this machine's architecture. */
async function pickManifest(archive: string, root: string, index: Json, depth = 0): Promise<{ digest: string; manifest: Json }> {
  const list = Array.isArray(index.manifests) ? (index.manifests as Json[]) : [];
  const arch = GOARCH[process.arch] ?? process.arch;
  const fit = list.length === 1 ? list : list.filter((d) => d.platform?.os === 'linux' && d.platform?.architecture === arch);
  if (fit.length !== 1) throw bad(archive, `the index names ${list.length} manifests and ${fit.length} for linux/${arch}; save one image (docker save IMAGE, or skopeo copy with one platform)`);
  const d = fit[0]!;
  const doc = await readJson(archive, await blob(archive, root, d.digest, 'a manifest'), String(d.digest));
  if (Array.isArray(doc.manifests)) {
    if (depth > 2) throw bad(archive, 'image indexes nested more than 3 deep');
    return pickManifest(archive, root, doc, depth + 1);
  }
  return { digest: String(d.digest), manifest: doc };
}

function configOf(doc: Json): ImageConfig {
  const c = (doc.config ?? {}) as Json;
  return {
    env: Array.isArray(c.Env) ? c.Env.map(String) : [],
    workingDir: typeof c.WorkingDir === 'string' ? c.WorkingDir : '',
    user: typeof c.User === 'string' ? c.User : '',
    created: typeof doc.created === 'string' ? doc.created : undefined,
  };
}

/** Read the image at `dir` (an unpacked layout): its layers (verified files, in order) and its config. */
async function readImage(archive: string, dir: string): Promise<Image> {
  const has = async (n: string) => (await lstat(path.join(dir, n)).catch(() => undefined))?.isFile() === true;
  if ((await has('index.json')) && (await has('oci-layout'))) {
    const index = await readJson(archive, await inside(archive, dir, 'index.json'), 'index.json');
    const { digest, manifest } = await pickManifest(archive, dir, index);
    const config = await readJson(archive, await blob(archive, dir, manifest.config?.digest, 'the config'), 'the config');
    const layers: string[] = [];
    for (const [i, l] of ((manifest.layers ?? []) as Json[]).entries()) {
      if (/zstd/.test(String(l.mediaType))) throw bad(archive, `layer ${i + 1} is zstd-compressed (${String(l.mediaType)}); leapfrog reads tar and tar+gzip layers`);
      layers.push(await blob(archive, dir, l.digest, `layer ${i + 1}`));
    }
    return { format: 'oci', digest, layers, config: configOf(config) };
  }
  if (await has('manifest.json')) {
    // docker save: [{ Config, RepoTags, Layers }] (https://github.com/moby/moby/blob/master/image/spec/v1.2.md).
    const list = await readJson(archive, await inside(archive, dir, 'manifest.json'), 'manifest.json');
    if (!Array.isArray(list) || list.length !== 1) throw bad(archive, `manifest.json names ${Array.isArray(list) ? list.length : 'no'} images; save exactly one (docker save IMAGE)`);
    const m = list[0] as Json;
    const configFile = await inside(archive, dir, String(m.Config ?? ''));
    const configSha = await sha256Of(configFile);
    // The config's file name is its digest (<hex>.json, or blobs/sha256/<hex> from Docker 25 on).
    if (!path.basename(String(m.Config)).startsWith(configSha)) throw bad(archive, `${String(m.Config)}: its sha256 is ${configSha}, not the one its name gives; the image is corrupt or was altered`);
    const config = await readJson(archive, configFile, String(m.Config));
    const diffIds = (config.rootfs?.diff_ids ?? []) as unknown[];
    const names = (Array.isArray(m.Layers) ? m.Layers : []) as unknown[];
    if (names.length !== diffIds.length) throw bad(archive, `manifest.json names ${names.length} layers, the config's rootfs.diff_ids ${diffIds.length}`);
    const layers: string[] = [];
    for (const [i, n] of names.entries()) {
      const file = await inside(archive, dir, String(n));
      const want = DIGEST.exec(String(diffIds[i]))?.[1];
      const got = await sha256Of(file);
      if (got !== want) throw bad(archive, `layer ${i + 1} (${String(n)}): sha256 ${got}, not the config's diff_id ${String(diffIds[i])}; the image is corrupt or was altered`);
      layers.push(file);
    }
    return { format: 'docker', digest: `sha256:${configSha}`, layers, config: configOf(config) };
  }
  throw bad(archive, 'neither an OCI image layout (oci-layout and index.json) nor a docker save archive (manifest.json)');
}

/** Unpack (if a tar) and read the image, then apply its layers onto `root` (which must not exist). */
export async function buildFromImage(archive: string, root: string, work: string, log: (l: string) => void, signal?: AbortSignal): Promise<Image> {
  const st = await lstat(archive).catch(() => undefined);
  if (!st) throw bad(archive, 'no such file or directory');
  let dir = path.resolve(archive);
  if (!st.isDirectory()) {
    dir = path.join(work, 'image');
    await mkdir(dir);
    try {
      await safeExtract(archive, dir, undefined, { signal });
    } catch (e) {
      if (e instanceof UnsafeTarball || e instanceof BadArchive) throw bad(archive, `refused: ${e.message}`);
      throw e;
    }
  }
  const image = await readImage(archive, dir);
  await mkdir(root);
  for (const [i, layer] of image.layers.entries()) {
    try {
      const r = await applyLayer(layer, root, work, signal);
      log(`layer ${i + 1}/${image.layers.length}: ${r.entries} entries, ${r.whiteouts} whiteouts, ${r.opaque} opaque directories`);
    } catch (e) {
      if (e instanceof UnsafeTarball || e instanceof BadArchive) throw bad(archive, `layer ${i + 1} refused: ${e.message}; nothing was written`);
      throw e;
    }
  }
  return image;
}

/** The config's Env as the env file's `path` (PATH's absolute entries, made relative to the root) and `vars` (the rest), or an error naming the bad entry. */
export function envOf(archive: string, env: string[]): { path: string[]; vars: Record<string, string> } {
  const vars: Record<string, string> = {};
  let pathList: string[] = [];
  for (const e of env) {
    const eq = e.indexOf('=');
    const k = eq < 0 ? e : e.slice(0, eq);
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) throw bad(archive, `the config's Env has ${JSON.stringify(e)}, whose name an env file cannot hold (letters, digits, _)`);
    const v = eq < 0 ? '' : e.slice(eq + 1);
    // An env file's path entries are relative to the env's root, which is `/` inside the sandbox.
    if (k === 'PATH') pathList = v.split(':').flatMap((p) => {
      const n = normalise(p.replace(/^\/+/, ''), 'PATH entry');
      return 'name' in n && n.name !== '' ? [n.name] : [];
    });
    else vars[k] = v;
  }
  return { path: pathList, vars };
}
