/**
 * One crafted tarball through the real CLI (`leapfrog envs provision`), in a
 * case directory of its own:
 *
 *   CASE/canary/      files, a directory and a symlink the archive aims at
 *   CASE/cache/       the env cache (unpacking happens in cache/.tmp/…)
 *   CASE/chains/sec.yaml, CASE/envs/crafted.yaml   a one-env chain
 *
 * and what the suite asserts of every case: the exit code, the canary
 * byte-for-byte as it was (content, mode, mtime, link targets), and the
 * cache holding exactly the env (or nothing) with an empty .tmp.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { stringify } from 'yaml';
import { leapfrog, tempDir, type CliResult } from '../helpers.js';

export interface Case {
  dir: string;
  canary: string;
  cache: string;
  chain: string;
  envFile: string;
}

const made: string[] = [];

/** Remove every case directory this test file made (its caches hold tens of thousands of files). */
export function removeCases(): void {
  for (const d of made.splice(0)) rmSync(d, { recursive: true, force: true });
}

/** A fresh case directory with its canary. */
export function newCase(prefix = 'sec'): Case {
  const dir = tempDir(prefix);
  made.push(dir);
  const canary = path.join(dir, 'canary');
  mkdirSync(path.join(canary, 'sub'), { recursive: true });
  writeFileSync(path.join(canary, 'file.txt'), 'canary\n', { mode: 0o644 });
  writeFileSync(path.join(canary, 'sub', 'x'), 'x\n', { mode: 0o600 });
  symlinkSync('file.txt', path.join(canary, 'link'));
  return { dir, canary, cache: path.join(dir, 'cache'), chain: path.join(dir, 'chains', 'sec.yaml'), envFile: path.join(dir, 'envs', 'crafted.yaml') };
}

/** Everything under dir, never following a link: type, mode, size, mtime, content hash or target. */
export function snapshot(dir: string, skip: (full: string) => boolean = () => false): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const name of readdirSync(d).sort()) {
      const full = path.join(d, name);
      if (skip(full)) continue;
      const st = lstatSync(full);
      const rel = path.relative(dir, full);
      const common = `${(st.mode & 0o177777).toString(8)} ${st.mtimeMs}`;
      if (st.isSymbolicLink()) out[rel] = `link ${common} -> ${readlinkSync(full)}`;
      else if (st.isDirectory()) {
        out[rel] = `dir ${common}`;
        walk(full);
      } else out[rel] = `file ${common} ${st.size} ${createHash('sha256').update(readFileSync(full)).digest('hex')}`;
    }
  };
  walk(dir);
  return out;
}

export const sha256 = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');

/** Point the case's env at `tarball` (a file source, its real sha256 unless told otherwise). */
export function useTarball(c: Case, tarball: string, sha = sha256(tarball)): void {
  mkdirSync(path.dirname(c.envFile), { recursive: true });
  mkdirSync(path.dirname(c.chain), { recursive: true });
  writeFileSync(c.envFile, stringify({ env: 'crafted', source: { file: tarball, sha256: sha }, path: ['bin'] }));
  useChain(c);
}

export function useUrl(c: Case, url: string, sha: string): void {
  mkdirSync(path.dirname(c.envFile), { recursive: true });
  writeFileSync(c.envFile, stringify({ env: 'crafted', source: { url, sha256: sha }, path: ['bin'] }));
  useChain(c);
}

function useChain(c: Case): void {
  mkdirSync(path.dirname(c.chain), { recursive: true });
  writeFileSync(
    c.chain,
    stringify({
      chain: 'sec',
      projects: { p: { databases: { main: 'p' }, version: { main: 'sqlalchemy-migrate' }, start: { main: 1 } } },
      releases: [{ release: 'r1', env: 'crafted', steps: [{ project: 'p', sync: ['true'], expect: { main: 2 } }] }],
    }),
  );
}

/** `leapfrog envs provision` of the case's chain into its cache. */
export function provision(c: Case, extra: string[] = []): Promise<CliResult> {
  return leapfrog(['envs', 'provision', '--chain', c.chain, '--cache-dir', c.cache, ...extra]);
}

/** The cache's entries; each must have its verified tarball kept in .tarballs, and no other tarball may be kept. */
export function cacheEntries(c: Case): string[] {
  const names = existsSync(c.cache) ? readdirSync(c.cache).filter((n) => n !== '.tmp' && n !== '.tarballs') : [];
  const kept = path.join(c.cache, '.tarballs');
  assert.deepEqual(existsSync(kept) ? readdirSync(kept).sort() : [], [...names].sort(), 'kept tarballs are those of the entries');
  return names;
}
export const tmpEntries = (c: Case) => (existsSync(path.join(c.cache, '.tmp')) ? readdirSync(path.join(c.cache, '.tmp')) : []);

/** Everything in the case directory besides the cache: what the archive must never touch. */
export function outside(c: Case): Record<string, string> {
  return snapshot(c.dir, (full) => full === c.cache);
}

/**
 * Provision `tarball` through the CLI and assert a refusal: exit 2, the
 * message matching `why`, nothing outside the cache changed, nothing cached,
 * nothing in .tmp.
 */
export async function assertRefused(c: Case, tarball: string, why: RegExp, extra: string[] = []): Promise<CliResult> {
  useTarball(c, tarball);
  const before = outside(c);
  const r = await provision(c, extra);
  assert.equal(r.exitCode, 2, `exit ${r.exitCode}\n${r.stderr}`);
  assert.match(r.stderr, why);
  assert.match(r.stderr, /^leapfrog: env crafted: /m);
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
  assert.deepEqual(outside(c), before, 'something outside the cache changed');
  assert.deepEqual(cacheEntries(c), [], 'nothing in the cache');
  assert.deepEqual(tmpEntries(c), [], 'nothing left in .tmp');
  return r;
}

/** Provision `tarball` and assert it unpacked: exit 0, nothing outside changed, one cache entry, empty .tmp; returns the env's root. */
export async function assertUnpacked(c: Case, tarball: string, extra: string[] = []): Promise<string> {
  useTarball(c, tarball);
  const before = outside(c);
  const r = await provision(c, extra);
  assert.equal(r.exitCode, 0, `exit ${r.exitCode}\n${r.stderr}`);
  assert.deepEqual(outside(c), before, 'something outside the cache changed');
  assert.deepEqual(cacheEntries(c), [sha256(tarball)]);
  assert.deepEqual(tmpEntries(c), [], 'nothing left in .tmp');
  const v = await leapfrog(['envs', 'verify', '--cache-dir', c.cache]);
  assert.equal(v.exitCode, 0, v.stdout + v.stderr);
  return path.join(c.cache, sha256(tarball));
}
