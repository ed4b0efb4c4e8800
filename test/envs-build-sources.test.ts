/**
 * `envs build --debian`'s archive lines: a released suite gets its -updates
 * and -security, `--no-updates` the suite alone (a mirror that carries no
 * security pool fails the build on its first missing file otherwise); the
 * flag belongs to --debian and is refused with --dir, before anything runs.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { sourceLines } from '../src/envs/build-debian.js';
import { leapfrog, tempDir } from './helpers.js';

const build = { suite: 'bookworm', packages: ['python3'], mirror: 'http://deb.debian.org/debian', components: ['main'], variant: 'essential' };

test('a released suite gets -updates and -security; with updates off, the suite alone', () => {
  assert.deepEqual(sourceLines({ ...build, updates: true }), [
    'deb http://deb.debian.org/debian bookworm main',
    'deb http://deb.debian.org/debian bookworm-updates main',
    'deb http://deb.debian.org/debian-security bookworm-security main',
  ]);
  assert.deepEqual(sourceLines({ ...build, updates: false }), ['deb http://deb.debian.org/debian bookworm main']);
  // unstable has neither, whatever the flag says.
  assert.deepEqual(sourceLines({ ...build, suite: 'sid', updates: true }), ['deb http://deb.debian.org/debian sid main']);
});

test('--no-updates with --dir is an input error naming the flags, and nothing is written', async () => {
  const dir = tempDir('no-updates');
  const tree = path.join(dir, 'tree');
  mkdirSync(tree);
  const out = path.join(dir, 'out');
  const r = await leapfrog(['envs', 'build', '--dir', tree, '--no-updates', '--out', out]);
  assert.equal(r.exitCode, 2, r.stderr);
  assert.match(r.stderr, /--no-updates go with --debian/);
  assert.ok(!existsSync(out));
});
