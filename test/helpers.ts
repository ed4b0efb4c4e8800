import { mkdirSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { execa } from 'execa';
import { parse, stringify } from 'yaml';
import { createCloud } from '../fixtures/cloud.js';

/** Shared by the test files: the real CLI, real fake-cloud databases, real tarballs. */

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const CHAIN = path.join(ROOT, 'chains', 'fakecloud-juno-newton.yaml');
export const ENVS = path.join(ROOT, 'envs');
/** Envs are content-addressed and renamed into place atomically, so test files may share one cache. */
export const CACHE = path.join(os.tmpdir(), 'leapfrog-test-cache');

export function tempDir(prefix: string): string {
  return mkdtempSync(path.join(os.tmpdir(), `lf-${prefix}-`));
}

export interface CliResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

export async function leapfrog(args: readonly string[], options: { env?: Record<string, string>; cwd?: string } = {}): Promise<CliResult> {
  const r = await execa(process.execPath, [path.join(ROOT, 'bin', 'leapfrog.js'), ...args], {
    reject: false,
    env: options.env,
    cwd: options.cwd ?? ROOT,
    stdin: 'ignore',
  });
  return { exitCode: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
}

export interface Cloud {
  dir: string;
  db: string;
  state: string;
  /** --chain, --db, --state-dir, --cache-dir for this cloud. */
  args(chain?: string): string[];
  file(name: string): string;
}

export async function fakeCloud(options: { instances?: number; nullUuids?: number } = {}): Promise<Cloud> {
  const dir = tempDir('cloud');
  const db = `sqlite:${path.join(dir, 'db')}`;
  await createCloud(db, { instances: options.instances ?? 60, nullUuids: options.nullUuids ?? 0 });
  const state = path.join(dir, 'state');
  return {
    dir,
    db,
    state,
    args: (chain = CHAIN) => ['--chain', chain, '--db', db, '--state-dir', state, '--cache-dir', CACHE],
    file: (name) => path.join(dir, 'db', `${name}.sqlite3`),
  };
}

/** A copy of the fake-cloud chain, changed by `edit`, that still finds the repo's env files. */
export function chainVariant(name: string, edit: (chain: Record<string, any>) => void): string {
  const doc = parse(readFileSync(CHAIN, 'utf8')) as Record<string, any>;
  edit(doc);
  doc.envs = ENVS;
  const dir = tempDir('chain');
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${name}.yaml`);
  writeFileSync(file, stringify(doc));
  return file;
}

export function query<T = unknown>(file: string, sql: string): T[] {
  const db = new Database(file, { readonly: true });
  try {
    return db.prepare(sql).all() as T[];
  } finally {
    db.close();
  }
}

export function scalar(file: string, sql: string): unknown {
  const row = query<Record<string, unknown>>(file, sql)[0];
  return row === undefined ? undefined : Object.values(row)[0];
}

/**
 * The fake-cloud chain with every env served over HTTP by `server` (url
 * sources, same sha256), in a directory of its own: `chains/` and `envs/`.
 */
export function remoteChain(server: { serve(name: string, file: string): void; url(name: string): string }, name = 'fakecloud-remote'): { chain: string; envDir: string; dir: string } {
  const dir = tempDir('remote');
  const envDir = path.join(dir, 'envs');
  mkdirSync(envDir, { recursive: true });
  mkdirSync(path.join(dir, 'chains'));
  for (const f of readdirSync(ENVS).filter((x) => x.endsWith('.yaml'))) {
    const doc = parse(readFileSync(path.join(ENVS, f), 'utf8')) as Record<string, any>;
    const tarball = path.resolve(ENVS, doc.source.file as string);
    server.serve(path.basename(tarball), tarball);
    doc.source = { url: server.url(path.basename(tarball)), sha256: doc.source.sha256 };
    writeFileSync(path.join(envDir, f), stringify(doc));
  }
  const doc = parse(readFileSync(CHAIN, 'utf8')) as Record<string, any>;
  doc.chain = name;
  delete doc.envs;
  const chain = path.join(dir, 'chains', `${name}.yaml`);
  writeFileSync(chain, stringify(doc));
  return { chain, envDir, dir };
}
