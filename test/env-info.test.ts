/**
 * ENV_INFO, written by `envs build` at the root of a tree it built: the tree
 * (mmdebstrap's packages and hooks, an OCI image's layers) decides what is
 * already at that name, and leapfrog writes it as root. A symlink there must
 * not make it write a host file.
 */
import assert from 'node:assert/strict';
import { lstatSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { ENV_INFO, readEnvInfo, writeEnvInfo } from '../src/envs/info.js';
import { tempDir } from './helpers.js';

const info = { env: 'bookworm', build: { debian: 'bookworm', updates: false }, packages: [{ name: 'python3', version: '3.11.2-1', arch: 'amd64' }] };

test('ENV_INFO is written as a new file in the tree, never through a symlink or into a directory the tree put at its name', async () => {
  const dir = tempDir('env-info');
  const victim = path.join(dir, 'host-file');
  writeFileSync(victim, 'host\n');
  for (const planted of ['link', 'dangling', 'dir'] as const) {
    const root = path.join(dir, `root-${planted}`);
    mkdirSync(root);
    const at = path.join(root, ENV_INFO);
    if (planted === 'link') symlinkSync(victim, at);
    else if (planted === 'dangling') symlinkSync(path.join(dir, `created-by-${planted}`), at);
    else mkdirSync(path.join(at, 'sub'), { recursive: true });
    await writeEnvInfo(root, info);
    assert.equal(readFileSync(victim, 'utf8'), 'host\n', `${planted}: the host file is untouched`);
    assert.equal(lstatSync(at).isFile(), true, `${planted}: ${ENV_INFO} is a regular file`);
    assert.deepEqual(await readEnvInfo(root), info, `${planted}: it reads back`);
  }
  assert.throws(() => lstatSync(path.join(dir, 'created-by-dangling')), /ENOENT/, 'nothing created through the dangling link');
});
