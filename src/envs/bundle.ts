import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import * as tar from 'tar';
import { parseDocument, stringify } from 'yaml';
import { loadChain, loadChainEnvs } from '../chain/load.js';
import type { Chain, EnvDef } from '../chain/types.js';
import { LeapfrogError } from '../errors.js';
import { provisionAll } from './cache.js';
import { DEFAULT_LIMITS, safeExtract, UnsafeTarball, type ExtractLimits } from './extract.js';
import { sniff, type Compression } from './decompress.js';
import { spoolCopy } from './spool.js';
import { defaultSource, keptTarball, sha256File, type ProvisionedEnv, type ProvisionOptions, type TarballBytes } from './store.js';
import { makeDirs } from '../dirs.js';

/**
 * A bundle carries one chain into an air-gapped window: a plain tar (the env
 * tarballs inside are compressed already) holding
 *
 *   bundle.json              format, chain name, sha256 of every other file
 *   chains/<chain>.yaml      the chain, its `envs:` key dropped
 *   envs/<env>.yaml          each env, source rewritten to the bundled tarball
 *   tarballs/<sha256>.tar.gz the env tarballs, named by their checksum (.tar.zst, .tar:
 *                            by what the bytes are)
 *
 * so that the imported chain loads with its env files from a directory of
 * its own and provisions with no network even when the cache is wiped.
 * Import unpacks with the same safe extraction as an env and checks every
 * sha256 before anything is installed.
 */

export const BUNDLE_FORMAT = 'leapfrog.bundle/v1';

interface BundleIndex {
  format: string;
  chain: string;
  chainFile: string;
  envs: { name: string; sha256: string; tarball: string }[];
  files: Record<string, string>;
}

function tempBeside(target: string): string {
  return `${target}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
}

/** The chain file without its `envs:` key, comments kept (the bundle's env files sit at the default ../envs). */
function portableChain(text: string): string {
  const doc = parseDocument(text);
  // Untouched when there is nothing to drop: the same bytes, the same chain sha256 in the ledger.
  if (!doc.has('envs')) return text;
  doc.delete('envs');
  return doc.toString();
}

function bundledEnvFile(env: EnvDef, original: string, tarball: string): string {
  const doc = parseDocument(original);
  doc.set('source', doc.createNode({ file: `../${tarball}`, sha256: env.source.sha256 }, { flow: true }));
  return doc.toString();
}

export interface CreatedBundle {
  file: string;
  chain: string;
  envs: number;
  /** Tarballs copied from the cache rather than read from their source. */
  fromCache: number;
}

const SUFFIX: Record<Compression, string> = { gzip: '.tar.gz', zstd: '.tar.zst', none: '.tar' };

/**
 * Copy the cache's kept tarball into `spool`, hashing it as it is written:
 * its bytes, or undefined when there is none or it no longer has its
 * checksum (then the env's own source is read, and the kept one is left
 * for `envs repair`/`gc` to deal with).
 */
async function copyKept(cacheDir: string, sha256: string, spool: string, options: ProvisionOptions): Promise<TarballBytes | undefined> {
  const kept = keptTarball(cacheDir, sha256);
  if (!existsSync(kept)) return undefined;
  try {
    const got = await spoolCopy(kept, spool, (options.limits ?? DEFAULT_LIMITS).maxBytes, options.signal);
    if (got.sha256 === sha256) return { file: spool, sha256 };
  } catch (err) {
    if (options.signal?.aborted) throw err;
  }
  await rm(spool, { force: true });
  return undefined;
}

export async function createBundle(chain: Chain, envs: ReadonlyMap<string, EnvDef>, out: string, options: ProvisionOptions & { cacheDir?: string | undefined }): Promise<CreatedBundle> {
  const target = path.resolve(out);
  const stage = tempBeside(target);
  const partial = tempBeside(target);
  try {
    makeDirs(path.join(stage, 'chains'), 'the bundle directory', 0o755);
    await mkdir(path.join(stage, 'envs'));
    await mkdir(path.join(stage, 'tarballs'));
    const index: BundleIndex = { format: BUNDLE_FORMAT, chain: chain.name, chainFile: `chains/${chain.name}.yaml`, envs: [], files: {} };
    await writeFile(path.join(stage, index.chainFile), portableChain(await readFile(chain.file, 'utf8')));
    const bundled = new Map<string, string>();
    let fromCache = 0;
    for (const env of envs.values()) {
      let tarball = bundled.get(env.source.sha256);
      if (tarball === undefined) {
        const spool = path.join(stage, 'tarballs', `${env.source.sha256}.partial`);
        // The cache's verified tarball first (hashed again as it is copied), else
        // a url downloaded straight into the bundle, a file copied; always hashed as written.
        let got = options.cacheDir === undefined ? undefined : await copyKept(options.cacheDir, env.source.sha256, spool, options);
        if (got) fromCache++;
        else {
          try {
            got = await defaultSource(env, spool, options);
          } catch (err) {
            if (err instanceof LeapfrogError) throw err;
            if (options.signal?.aborted) throw new LeapfrogError('interrupted', `bundle create: interrupted; the bundle was not written`, { cause: err });
            throw new LeapfrogError('input', `env ${env.name}: cannot read ${env.source.location} (${(err as Error).message}); the bundle was not written`, { cause: err });
          }
        }
        if (got.sha256 !== env.source.sha256) {
          throw new LeapfrogError('input', `env ${env.name}: checksum mismatch for ${env.source.location}: expected sha256 ${env.source.sha256}, got ${got.sha256}; the bundle was not written`);
        }
        // Named for what it holds (an env file may name a .tar.gz that is a .tar.zst: the bytes decide).
        tarball = `tarballs/${env.source.sha256}${SUFFIX[await sniff(spool)]}`;
        await rename(spool, path.join(stage, tarball));
        bundled.set(env.source.sha256, tarball);
      }
      const envRel = `envs/${path.basename(env.file).replace(/\.json$/, '.yaml')}`;
      const original = await readFile(env.file, 'utf8');
      // JSON env files are YAML too; the rewritten one is YAML.
      await writeFile(path.join(stage, envRel), env.file.endsWith('.json') ? stringify({ ...(JSON.parse(original) as object), source: { file: `../${tarball}`, sha256: env.source.sha256 } }) : bundledEnvFile(env, original, tarball));
      index.envs.push({ name: env.name, sha256: env.source.sha256, tarball });
    }
    for (const dir of ['chains', 'envs', 'tarballs']) {
      for (const f of (await readdir(path.join(stage, dir))).sort()) index.files[`${dir}/${f}`] = await sha256File(path.join(stage, dir, f));
    }
    await writeFile(path.join(stage, 'bundle.json'), JSON.stringify(index, null, 2));
    await tar.c({ file: partial, cwd: stage, portable: true }, ['bundle.json', 'chains', 'envs', 'tarballs']);
    await rename(partial, target);
    return { file: target, chain: chain.name, envs: index.envs.length, fromCache };
  } finally {
    await rm(stage, { recursive: true, force: true });
    await rm(partial, { force: true });
  }
}

export interface ImportedBundle {
  chain: string;
  chainFile: string;
  dir: string;
  envs: ProvisionedEnv[];
}

export async function importBundle(file: string, to: string, cacheDir: string, options: ProvisionOptions & { limits?: ExtractLimits; parallel?: number }): Promise<ImportedBundle> {
  const dest = path.resolve(to);
  if (existsSync(dest) && (await readdir(dest)).length > 0) {
    throw new LeapfrogError('input', `bundle import: ${dest} already exists and is not empty; remove it or choose another --to`);
  }
  if (!existsSync(file)) throw new LeapfrogError('input', `bundle import: ${file} does not exist`);
  const stage = tempBeside(dest);
  makeDirs(stage, 'the bundle directory');
  try {
    try {
      // filesOnly: `bundle create` writes no links, and every file of the stage is read below (a link could point at /dev/zero).
      await safeExtract(file, stage, options.limits ?? { ...DEFAULT_LIMITS, maxEntries: 10_000 }, { signal: options.signal, filesOnly: true });
    } catch (err) {
      if (options.signal?.aborted) throw new LeapfrogError('interrupted', `bundle ${file}: interrupted; nothing was installed`, { cause: err });
      const why = err instanceof UnsafeTarball ? `refused: ${err.message}` : `not a readable bundle (${(err as Error).message})`;
      throw new LeapfrogError('input', `bundle ${file}: ${why}; nothing was installed`, { cause: err });
    }
    let index: BundleIndex;
    try {
      index = JSON.parse(await readFile(path.join(stage, 'bundle.json'), 'utf8')) as BundleIndex;
    } catch (err) {
      throw new LeapfrogError('input', `bundle ${file}: no readable bundle.json; was it made by \`leapfrog bundle create\`?`, { cause: err });
    }
    if (index.format !== BUNDLE_FORMAT) throw new LeapfrogError('input', `bundle ${file}: format ${String(index.format)}, this leapfrog reads ${BUNDLE_FORMAT}`);
    // Every file is checked against the index before any of it is used.
    const problems: string[] = [];
    for (const [rel, sha] of Object.entries(index.files)) {
      const p = path.join(stage, rel);
      if (rel.split('/').includes('..') || !existsSync(p)) problems.push(`${rel}: missing from the bundle`);
      else {
        const actual = await sha256File(p);
        if (actual !== sha) problems.push(`${rel}: expected sha256 ${sha}, got ${actual}`);
      }
    }
    for (const e of index.envs) if (!(e.tarball in index.files)) problems.push(`${e.tarball}: env ${e.name}'s tarball is not listed in bundle.json`);
    if (!(index.chainFile in index.files)) problems.push(`${index.chainFile}: the chain is not listed in bundle.json`);
    if (problems.length > 0) throw new LeapfrogError('input', `bundle ${file} is damaged or was altered; nothing was installed:`, { details: problems });

    // The chain and env files load through the same validation as any other.
    const chain = loadChain(path.join(stage, index.chainFile));
    const envs = loadChainEnvs(chain);
    const { failed } = await provisionAll([...envs.values()], cacheDir, options.parallel ?? 4, { ...options, offline: true });
    if (failed.length > 0) throw new LeapfrogError('input', `bundle ${file}: ${failed.length} env${failed.length === 1 ? '' : 's'} could not be unpacked; nothing was installed:`, { details: failed.map((f) => f.message) });
    makeDirs(path.dirname(dest), 'the bundle directory', 0o755);
    await rm(dest, { recursive: true, force: true }); // empty, checked above
    await rename(stage, dest);
    const installed = loadChain(path.join(dest, index.chainFile));
    const provisioned = [...loadChainEnvs(installed).values()].map((def) => ({ def, root: path.join(cacheDir, def.source.sha256), sha256: def.source.sha256, cached: true }));
    return { chain: index.chain, chainFile: installed.file, dir: dest, envs: provisioned };
  } finally {
    await rm(stage, { recursive: true, force: true });
  }
}
