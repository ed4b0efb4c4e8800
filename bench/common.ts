import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import * as tar from 'tar';
import { stringify } from 'yaml';

/**
 * What the benchmarks share: their flags (node's own parser, strict, so a
 * mistyped flag is an error rather than a silently ignored default) and a
 * toolchain whose only command is a no-op, for measuring leapfrog itself.
 */
export function benchOptions<T extends Record<string, string>>(defaults: T, booleans: readonly string[] = []): { [K in keyof T]: string } & Record<string, string | boolean | undefined> {
  const options: Record<string, { type: 'string' | 'boolean'; default?: string }> = {};
  for (const [k, v] of Object.entries(defaults)) options[k] = { type: 'string', default: v };
  for (const b of booleans) options[b] = { type: 'boolean' };
  const { values } = parseArgs({ args: process.argv.slice(2), options, strict: true, allowPositionals: false });
  return values as { [K in keyof T]: string } & Record<string, string | boolean | undefined>;
}

/** Write `<work>/envs/noop.yaml` for a tarball whose bin/noop exits 0. */
export async function noopEnv(work: string): Promise<string> {
  const src = path.join(work, 'env-src');
  mkdirSync(path.join(src, 'bin'), { recursive: true });
  writeFileSync(path.join(src, 'bin', 'noop'), '#!/bin/sh\nexit 0\n', { mode: 0o755 });
  const tarball = path.join(work, 'noop.tar.gz');
  await tar.c({ gzip: true, file: tarball, cwd: src, portable: true }, ['bin']);
  const sha256 = createHash('sha256').update(readFileSync(tarball)).digest('hex');
  const envDir = path.join(work, 'envs');
  mkdirSync(envDir, { recursive: true });
  writeFileSync(path.join(envDir, 'noop.yaml'), stringify({ env: 'noop', source: { file: tarball, sha256 }, path: ['bin'] }));
  return envDir;
}
