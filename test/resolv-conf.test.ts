/**
 * The /etc/resolv.conf a rootfs step is given under --isolate-network: a file
 * in the run's directory naming the loopback. bwrap's --ro-bind follows a
 * symlink at its source, so what is at that name must be the file leapfrog
 * wrote, never a link to a host file, and it is never written through one.
 */
import assert from 'node:assert/strict';
import { lstatSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { resolvConf } from '../src/runner/step.js';
import { tempDir } from './helpers.js';

test('isolated network: the resolv.conf bound is a regular file leapfrog wrote, whatever was at its name (a link to a host file, a dangling link)', () => {
  const dir = tempDir('resolv');
  const secret = path.join(dir, 'host-secret');
  writeFileSync(secret, 'not for steps\n');
  for (const planted of ['link', 'dangling', 'stale file', 'directory'] as const) {
    const run = path.join(dir, `run-${planted.replace(' ', '-')}`);
    mkdirSync(path.join(run, 'tmp'), { recursive: true });
    const at = path.join(run, 'resolv.conf');
    if (planted === 'link') symlinkSync(secret, at);
    else if (planted === 'dangling') symlinkSync(path.join(dir, 'made-through-link'), at);
    else if (planted === 'directory') mkdirSync(path.join(at, 'sub'), { recursive: true });
    else writeFileSync(at, 'nameserver 203.0.113.9\n');
    const bind = resolvConf(false, { tmp: path.join(run, 'tmp') });
    assert.equal(bind.path, '/etc/resolv.conf');
    assert.equal(bind.writable, false);
    assert.equal(bind.from, at);
    assert.equal(lstatSync(at).isFile(), true, `${planted}: a regular file, not a link bwrap would follow`);
    assert.match(readFileSync(at, 'utf8'), /^nameserver 127\.0\.0\.1$/m, planted);
    assert.doesNotMatch(readFileSync(at, 'utf8'), /203\.0\.113\.9/, `${planted}: written anew`);
    assert.equal(readFileSync(secret, 'utf8'), 'not for steps\n', `${planted}: the host file untouched`);
  }
  assert.throws(() => lstatSync(path.join(dir, 'made-through-link')), /ENOENT/, 'nothing written through the dangling link');
  for (const d of readdirSync(dir).filter((n) => n.startsWith('run-'))) assert.deepEqual(readdirSync(path.join(dir, d)).sort(), ['resolv.conf', 'tmp'], `${d}: no temporary file left`);
});
