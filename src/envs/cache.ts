import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { lstat, readFile, readdir, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import type { EnvDef } from '../chain/types.js';
import { LeapfrogError } from '../errors.js';
import { buildManifest, compareManifests, MANIFEST, type Manifest } from './extract.js';
import { statTree } from './manifest.js';
import { cachedEnv, envRoot, keptTarball, provisionEnv, type ProvisionedEnv, type ProvisionOptions } from './store.js';

/**
 * What is in the env cache, whether it is intact, and what may go: the
 * listing and gc decisions are pure functions of the entries read here and
 * the chains given; only `removeEntry` and `verifyEntry` touch the disk.
 */

const SHA = /^[0-9a-f]{64}$/;

export interface ManifestFile {
  sha256: string;
  env: string;
  source: string;
  unpackedAt: string;
  files: Manifest;
}

export interface CacheEntry {
  sha256: string;
  root: string;
  /** Env name recorded when it was unpacked (the tarball may serve several names). */
  env: string | undefined;
  unpackedAt: string | undefined;
  /** Sum of the file sizes in the manifest. */
  bytes: number | undefined;
  files: number | undefined;
  /** Why the manifest could not be read, if it could not. */
  problem: string | undefined;
  /** The manifest as read, for verifyEntry (a venv's is megabytes of JSON: parsed once). */
  manifest?: ManifestFile | undefined;
}

export async function readManifest(root: string): Promise<ManifestFile> {
  return JSON.parse(await readFile(path.join(root, MANIFEST), 'utf8')) as ManifestFile;
}

export async function listCache(cacheDir: string): Promise<CacheEntry[]> {
  if (!existsSync(cacheDir)) return [];
  const out: CacheEntry[] = [];
  for (const name of (await readdir(cacheDir)).sort()) if (SHA.test(name)) out.push(await readEntry(cacheDir, name));
  return out;
}

/** One entry of the cache, read from its manifest (or why that cannot be read). */
export async function readEntry(cacheDir: string, sha256: string): Promise<CacheEntry> {
  const root = envRoot(cacheDir, sha256);
  try {
    const m = await readManifest(root);
    const files = Object.values(m.files).filter((f) => f.type === 'file');
    return { sha256, root, env: m.env, unpackedAt: m.unpackedAt, bytes: files.reduce((a, f) => a + (f.size ?? 0), 0), files: files.length, problem: undefined, manifest: m };
  } catch (err) {
    const st = await stat(root);
    return { sha256, root, env: undefined, unpackedAt: st.mtime.toISOString(), bytes: undefined, files: undefined, problem: `no readable ${MANIFEST} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})` };
  }
}

/** Which chains use which tarball: sha256 → "chain/env" labels. */
export function usage(chains: ReadonlyArray<{ chain: string; envs: ReadonlyMap<string, EnvDef> }>): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const c of chains) {
    for (const e of c.envs.values()) (out.get(e.source.sha256) ?? out.set(e.source.sha256, []).get(e.source.sha256)!).push(`${c.chain}:${e.name}`);
  }
  return out;
}

export interface GcDecision {
  entry: CacheEntry;
  remove: boolean;
  why: string;
}

/**
 * What gc removes. An entry that changed since it was unpacked (`changed`:
 * sha256 → what changed) always goes: no run may use it (provisionAll
 * refuses it), and the next provision unpacks it again from its tarball.
 * Otherwise an entry a given chain references is kept. With chains given,
 * every other entry goes (only those older than `olderThanDays` when that
 * is given too); with no chains, only `olderThanDays` decides; with neither,
 * only changed entries go, so a bare `gc` never empties the cache.
 */
export function gcDecisions(entries: readonly CacheEntry[], used: ReadonlyMap<string, string[]> | undefined, olderThanDays: number | undefined, now: number, changed: ReadonlyMap<string, readonly string[]> = new Map()): GcDecision[] {
  if (used === undefined && olderThanDays === undefined) {
    throw new LeapfrogError('input', 'envs gc needs --chain/--chains (keep what those chains use) or --older-than DAYS (or both); it will not guess what may go (entries changed since they were unpacked always go)');
  }
  return entries.map((entry) => {
    const problems = changed.get(entry.sha256);
    if (problems && problems.length > 0) return { entry, remove: true, why: `changed since it was unpacked: ${problems[0]}${problems.length > 1 ? ` (and ${problems.length - 1} more)` : ''}` };
    const users = used?.get(entry.sha256);
    if (users && users.length > 0) return { entry, remove: false, why: `used by ${users.join(', ')}` };
    const unpacked = entry.unpackedAt ? Date.parse(entry.unpackedAt) : NaN;
    const ageDays = Number.isNaN(unpacked) ? Infinity : (now - unpacked) / 86_400_000;
    if (olderThanDays !== undefined && ageDays <= olderThanDays) return { entry, remove: false, why: `unpacked ${ageDays.toFixed(1)} days ago` };
    const reasons = [used ? 'no given chain uses it' : undefined, olderThanDays !== undefined ? `older than ${olderThanDays} days` : undefined].filter(Boolean);
    return { entry, remove: true, why: reasons.join(', ') };
  });
}

/**
 * Remove an entry: first renamed into .tmp (one atomic step, so a run
 * provisioning at the same moment sees either the whole tree or none), then
 * deleted with its kept tarball.
 */
export async function removeEntry(cacheDir: string, sha256: string): Promise<void> {
  const doomed = path.join(cacheDir, '.tmp', `gc-${sha256.slice(0, 12)}-${process.pid}-${randomBytes(4).toString('hex')}`);
  await rename(envRoot(cacheDir, sha256), doomed);
  await rm(keptTarball(cacheDir, sha256), { force: true });
  await rm(doomed, { recursive: true, force: true, maxRetries: 10, retryDelay: 50 });
}

/** Leftovers of provisions, gc and repairs whose process is gone (crashed mid-unpack): `[gc-|repair-]<sha12>-<pid>-<rand>`. */
export async function staleTemps(cacheDir: string): Promise<string[]> {
  const tmp = path.join(cacheDir, '.tmp');
  if (!existsSync(tmp)) return [];
  const out: string[] = [];
  for (const name of await readdir(tmp)) {
    const pid = Number(/^(?:gc-|repair-)?[0-9a-f]{12}-(\d+)-/.exec(name)?.[1]);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    try {
      process.kill(pid, 0);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ESRCH') out.push(path.join(tmp, name));
    }
  }
  return out;
}

export interface VerifyResult {
  entry: CacheEntry;
  ok: boolean;
  problems: string[];
}

/** How deep a check goes: `stat` reads no file (sizes, modes, mtimes, names); `hash` re-hashes every file as well. */
export type VerifyDepth = 'stat' | 'hash';

/**
 * Compare an unpacked tree with the manifest written when it was unpacked:
 * the one check `envs verify` (hash), `envs gc` (stat), `check-migrations`
 * (hash unless --no-verify-envs) and every run before its first step (stat
 * unless --verify-envs) make.
 */
export async function verifyEntry(entry: CacheEntry, depth: VerifyDepth = 'hash'): Promise<VerifyResult> {
  if (entry.problem) return { entry, ok: false, problems: [entry.problem] };
  const recorded = entry.manifest ?? (await readManifest(entry.root));
  const problems: string[] = [];
  if (recorded.sha256 !== entry.sha256) problems.push(`${MANIFEST} is for ${recorded.sha256}, not this entry`);
  const writtenAt = Math.floor((await lstat(path.join(entry.root, MANIFEST))).mtimeMs);
  problems.push(...compareManifests(recorded.files, depth === 'hash' ? await buildManifest(entry.root) : await statTree(entry.root), writtenAt));
  return { entry, ok: problems.length === 0, problems };
}

/** The refusal for a cached env that changed: its files, and the command that repairs it. */
export function changedEnvError(env: EnvDef, r: VerifyResult, options: Pick<ProvisionOptions, 'repairHint'>): LeapfrogError {
  const shown = r.problems.slice(0, 20);
  return new LeapfrogError(
    'refused',
    `env ${env.name}: ${r.entry.root} changed since it was unpacked from the tarball of sha256 ${env.source.sha256.slice(0, 12)}, so its steps would not run what the tarball holds; refused to use it. ` +
      `Repair it from its tarball with \`${options.repairHint?.(env.name) ?? `leapfrog envs repair ${env.name} --chain CHAIN`}\`, then run again. What changed:`,
    { details: [...shown, ...(r.problems.length > shown.length ? [`… and ${r.problems.length - shown.length} more`] : [])] },
  );
}

/** Provision envs with at most `parallel` at once; every failure reported, not just the first. */
export async function provisionAll(envs: readonly EnvDef[], cacheDir: string, parallel: number, options: ProvisionOptions, onDone?: (env: EnvDef, r: ProvisionedEnv | LeapfrogError) => void): Promise<{ done: ProvisionedEnv[]; failed: LeapfrogError[] }> {
  // One provisioning per tarball: two env names for the same bytes would only race each other.
  const unique = [...new Map(envs.map((e) => [e.source.sha256, e])).values()];
  if (options.offline) {
    // All that --offline cannot do, said once, before anything is unpacked.
    const missing = unique.filter((e) => e.source.kind === 'url' && !cachedEnv(e, cacheDir));
    if (missing.length > 1) {
      throw new LeapfrogError(
        'input',
        `${missing.length} envs are not in the cache and --offline forbids downloading them: ${missing.map((e) => e.name).join(', ')}. Provision them before the window with \`${options.provisionHint ?? 'leapfrog envs provision --chain CHAIN'}\` (or import a bundle)`,
      );
    }
  }
  const done: ProvisionedEnv[] = [];
  const failed: LeapfrogError[] = [];
  let next = 0;
  const worker = async () => {
    while (next < unique.length) {
      const env = unique[next++]!;
      try {
        const p = await provisionEnv(env, cacheDir, options);
        // Cached earlier: it must still be what was unpacked (a new one was just hashed as it was written).
        if (p.cached && options.verify !== undefined) {
          const r = await verifyEntry(await readEntry(cacheDir, p.sha256), options.verify);
          if (!r.ok) throw changedEnvError(env, r, options);
        }
        done.push(p);
        onDone?.(env, p);
      } catch (err) {
        const e = err instanceof LeapfrogError ? err : new LeapfrogError('unexpected', `env ${env.name}: ${(err as Error).message}`, { cause: err });
        failed.push(e);
        onDone?.(env, e);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(parallel, unique.length)) }, worker));
  return { done, failed };
}
