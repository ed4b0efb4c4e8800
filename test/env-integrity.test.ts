/**
 * Env integrity at every run (issue 15, item 6): a cached env changed after
 * it was unpacked (a line appended to a toolchain script) is refused by
 * `run` before its first step, naming the file; check-migrations reports
 * it; `envs repair` unpacks it again from its tarball and the run then
 * succeeds; `envs gc` removes a changed env even while a chain uses it.
 * The cheap check reads no file: a same-size change with its mtime put back
 * passes it, and --verify-envs (check-migrations' default) catches it.
 * Real CLI, real files, each test with a cache of its own (the shared test
 * cache must never be changed).
 */
import assert from 'node:assert/strict';
import { appendFileSync, existsSync, readFileSync, statSync, utimesSync, writeFileSync, chmodSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { loadEnv } from '../src/chain/load.js';
import { readEntry, verifyEntry } from '../src/envs/cache.js';
import { MANIFEST } from '../src/envs/manifest.js';
import { ENVS, describeTargets, fakeCloud, leapfrog, ledgerRows, tempDir } from './helpers.js';

type Json = Record<string, any>;
const sha = (env: string) => loadEnv(ENVS, env).source.sha256;

async function provisioned(chain: string): Promise<string> {
  const cache = tempDir('integrity-cache');
  const p = await leapfrog(['envs', 'provision', '--chain', chain, '--cache-dir', cache]);
  assert.equal(p.exitCode, 0, p.stderr);
  return cache;
}

const checkOf = (stdout: string, name: string) => (JSON.parse(stdout) as Json).checks.find((c: Json) => c.check === name) as Json;

describeTargets('a changed env', (kind) => {
  test('run refuses it naming the file (exit 3, nothing run); check-migrations fails on it; envs repair puts it right and the run succeeds', async () => {
    const cloud = await fakeCloud({ kind });
    const cache = await provisioned(cloud.chain);
    const args = ['--chain', cloud.chain, '--db', cloud.db, '--state-dir', cloud.state, '--cache-dir', cache];
    const tool = path.join(cache, sha('compute-kilo'), 'bin', 'compute-manage');
    appendFileSync(tool, '\necho "changed by hand"\n');

    const run = await leapfrog(['run', ...args, '--until', 'kilo']);
    assert.equal(run.exitCode, 3, `${run.stdout}\n${run.stderr}`);
    assert.match(run.stderr, /env compute-kilo: .* changed since it was unpacked from the tarball of sha256 [0-9a-f]{12}.*refused to use it/);
    assert.match(run.stderr, /\n {2}bin\/compute-manage: size \d+ bytes, was \d+ \(content changed\)/);
    const repair = `leapfrog envs repair compute-kilo --chain ${cloud.chain} --state-dir ${cloud.state} --cache-dir ${cache}`;
    assert.ok(run.stderr.includes(`\`${repair}\``), run.stderr);
    assert.equal(ledgerRows(cloud.state, 'SELECT COUNT(*) AS n FROM runs')[0]!.n, 0, 'no run started');
    assert.equal(await cloud.scalar('compute', 'SELECT MAX(version) FROM migrate_version'), 254, 'compute still at juno');

    const check = await leapfrog(['check-migrations', ...args, '--format', 'json']);
    assert.equal(check.exitCode, 2, check.stderr);
    const envs = checkOf(check.stdout, 'Envs');
    assert.equal(envs.result, 'Failure');
    assert.match(envs.details, /compute-kilo: changed since it was unpacked \(every file hashed\)/);
    assert.match(envs.details, /bin\/compute-manage: content changed \(sha256 [0-9a-f]{64} recorded, [0-9a-f]{64} now\)/);
    assert.ok(envs.details.includes(`\`${repair}\``), envs.details);

    const fixed = await leapfrog(['envs', 'repair', 'compute-kilo', '--chain', cloud.chain, '--state-dir', cloud.state, '--cache-dir', cache]);
    assert.equal(fixed.exitCode, 0, fixed.stderr);
    assert.match(fixed.stdout, /env compute-kilo \([0-9a-f]{12}\) unpacked again from its tarball .*: 1 change undone \(bin\/compute-manage: content changed/);
    assert.doesNotMatch(readFileSync(tool, 'utf8'), /changed by hand/);
    const again = await leapfrog(['envs', 'repair', 'compute-kilo', '--chain', cloud.chain, '--cache-dir', cache]);
    assert.match(again.stdout, /is intact \(every file hashed\): nothing to repair/);
    const verify = await leapfrog(['envs', 'verify', '--cache-dir', cache]);
    assert.equal(verify.exitCode, 0, verify.stdout);

    const ok = await leapfrog(['run', ...args]);
    assert.equal(ok.exitCode, 0, ok.stderr);
    assert.match(ok.stdout, /Run 1 succeeded/);
    const after = await leapfrog(['check-migrations', ...args, '--format', 'json']);
    assert.equal(checkOf(after.stdout, 'Envs').result, 'Success');
  });
});

test('the cheap check reads no file: a same-size edit with its mtime put back passes it; --verify-envs and check-migrations hash and refuse it', async () => {
  const cloud = await fakeCloud();
  const cache = await provisioned(cloud.chain);
  const args = ['--chain', cloud.chain, '--db', cloud.db, '--state-dir', cloud.state, '--cache-dir', cache];
  // identity's kilo tool: the same size, one character of a comment changed, its mtime put back.
  const tool = path.join(cache, sha('identity-kilo'), 'bin', 'identity-manage');
  const st = statSync(tool);
  const text = readFileSync(tool, 'utf8');
  writeFileSync(tool, text.replace('# ', '#-'));
  assert.equal(statSync(tool).size, st.size);
  utimesSync(tool, st.atime, st.mtime);

  const check = await leapfrog(['check-migrations', ...args, '--format', 'json']);
  assert.match(checkOf(check.stdout, 'Envs').details, /identity-kilo: changed since it was unpacked \(every file hashed\)[^]*bin\/identity-manage: content changed/);
  const cheap = await leapfrog(['check-migrations', ...args, '--format', 'json', '--no-verify-envs']);
  assert.equal(checkOf(cheap.stdout, 'Envs').result, 'Success', 'sizes, modes and mtimes are as unpacked');
  const run = await leapfrog(['run', ...args, '--until', 'kilo', '--verify-envs']);
  assert.equal(run.exitCode, 3, run.stderr);
  assert.match(run.stderr, /env identity-kilo: [^]*bin\/identity-manage: content changed/);
});

test('envs gc removes a changed env although a chain uses it, and keeps the intact ones', async () => {
  const cloud = await fakeCloud();
  const cache = await provisioned(cloud.chain);
  const changed = sha('compute-newton');
  chmodSync(path.join(cache, changed, 'bin'), 0o700);
  const gc = await leapfrog(['envs', 'gc', '--chain', cloud.chain, '--cache-dir', cache]);
  assert.equal(gc.exitCode, 0, gc.stderr);
  assert.match(gc.stdout, new RegExp(`removed {2}${changed.slice(0, 12)} compute-newton: changed since it was unpacked: bin: mode 700, was 755`));
  assert.match(gc.stdout, /kept {2}[0-9a-f]{12} compute-kilo: used by/);
  assert.equal(existsSync(path.join(cache, changed)), false);
  assert.equal(existsSync(path.join(cache, sha('compute-kilo'))), true);
  // Gone, not broken: the next run unpacks it again.
  const run = await leapfrog(['run', '--chain', cloud.chain, '--db', cloud.db, '--state-dir', cloud.state, '--cache-dir', cache]);
  assert.equal(run.exitCode, 0, run.stderr);
  assert.equal(existsSync(path.join(cache, changed)), true);
});

test('a manifest of an earlier release (no mtimes): a file modified after the manifest was written is still found without hashing', async () => {
  const cloud = await fakeCloud();
  const cache = await provisioned(cloud.chain);
  const entry = path.join(cache, sha('image-kilo'));
  const manifest = path.join(entry, MANIFEST);
  const written = statSync(manifest);
  const m = JSON.parse(readFileSync(manifest, 'utf8')) as Json;
  for (const e of Object.values(m.files as Record<string, Json>)) delete e.mtime;
  chmodSync(manifest, 0o644);
  writeFileSync(manifest, JSON.stringify(m));
  utimesSync(manifest, written.atime, written.mtime); // as it was written, right after unpacking
  assert.equal((await verifyEntry(await readEntry(cache, sha('image-kilo')), 'stat')).ok, true);
  const tool = path.join(entry, 'bin', 'image-manage');
  const st = statSync(tool);
  writeFileSync(tool, readFileSync(tool, 'utf8').replace('# ', '#-'));
  assert.equal(statSync(tool).size, st.size);
  const r = await verifyEntry(await readEntry(cache, sha('image-kilo')), 'stat');
  assert.equal(r.ok, false);
  assert.match(r.problems.join('\n'), /bin\/image-manage: modified .*, after it was unpacked/);
});
