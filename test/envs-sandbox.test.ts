/**
 * Sandbox hardening, through real fake-cloud runs: nothing of leapfrog's own
 * environment reaches a step, secrets reach no file leapfrog writes, and
 * --isolate-network really puts steps in a network namespace of their own.
 */
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { chainVariant, fakeCloud, leapfrog, MARIADB_SKIP, MARIADB_URL } from './helpers.js';

type Json = Record<string, any>;
const PASSWORD = 'Pa55-w0rd!mysql#9z';
const TOKEN = 'tok-5e3f9a0c7b1d';

/** The fake-cloud chain with one more check step at newton that shows the step's environment and network. */
function showingChain(name: string): string {
  return chainVariant(name, (c) => {
    c.releases.find((r: Json) => r.release === 'newton').steps.push({
      project: 'compute',
      env: 'compute-newton',
      name: 'show the sandbox',
      why: 'prints what a step can see: its environment and its network interfaces',
      check: ['sh', '-c', 'env; echo ---; cat /proc/net/dev'],
    });
  });
}

function allFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const full = path.join(dir, e.name);
    return e.isDirectory() ? allFiles(full) : e.isFile() ? [full] : [];
  });
}

async function showStepLog(state: string, runId: number): Promise<string> {
  const shown = JSON.parse((await leapfrog(['ledger', 'show', String(runId), '--state-dir', state, '--format', 'json'])).stdout) as Json;
  const step = shown.steps.find((s: Json) => s.step_id.startsWith('newton/compute/') && JSON.parse(JSON.stringify(s.command))[0] === 'sh');
  assert.ok(step, 'the check step ran');
  return readFileSync(step.log_path, 'utf8');
}

test('a secret in leapfrog\'s environment reaches no step, and the password is in no ledger, log or output', async () => {
  const cloud = await fakeCloud({ instances: 10 });
  const chain = showingChain('show-env');
  const env = { ...process.env, LEAPFROG_DB_PASSWORD: PASSWORD, MYSQL_PWD: PASSWORD, LEAPFROG_TEST_TOKEN: TOKEN, AWS_SECRET_ACCESS_KEY: TOKEN };
  const r = await leapfrog(['run', ...cloud.args(chain), '--format', 'json'], { env });
  assert.equal(r.exitCode, 0, r.stderr);
  const run = JSON.parse(r.stdout) as Json;
  const log = await showStepLog(cloud.state, run.run);
  // The step did print its environment…
  assert.match(log, /^PATH=\S+\/bin:\/usr\/local\/sbin:/m);
  assert.match(log, /^HOME=/m);
  // …and none of the parent's secrets were in it.
  for (const leak of [PASSWORD, TOKEN, 'LEAPFROG_DB_PASSWORD', 'MYSQL_PWD', 'LEAPFROG_TEST_TOKEN', 'AWS_SECRET_ACCESS_KEY']) {
    assert.ok(!log.includes(leak), `${leak} reached the step`);
  }
  const shown = await leapfrog(['ledger', 'show', String(run.run), '--state-dir', cloud.state], { env });
  const outputs = [r.stdout, r.stderr, shown.stdout, shown.stderr];
  for (const file of allFiles(cloud.state)) outputs.push(readFileSync(file).toString('latin1'));
  assert.ok(allFiles(cloud.state).some((f) => f.endsWith('ledger.sqlite3')), 'the ledger was searched');
  for (const text of outputs) {
    assert.ok(!text.includes(PASSWORD), 'the password was written somewhere');
    assert.ok(!text.includes(TOKEN), 'the token was written somewhere');
  }
});

test('--isolate-network: steps see only a loopback interface (or the run says why this machine cannot)', async () => {
  const cloud = await fakeCloud({ instances: 10 });
  const chain = showingChain('isolated');
  const r = await leapfrog(['run', ...cloud.args(chain), '--isolate-network', '--format', 'json']);
  if (r.exitCode === 2) {
    assert.match(r.stderr, /--isolate-network: this machine cannot run a step in a new network namespace \(.*unshare.*\)/);
    return;
  }
  assert.equal(r.exitCode, 0, r.stderr);
  const log = await showStepLog(cloud.state, (JSON.parse(r.stdout) as Json).run);
  assert.match(log.split('\n')[0]!, /\$ \/\S*unshare .*--net sh -c/);
  const interfaces = log.split('---\n')[1]!.split('\n').slice(2).filter((l) => l.includes(':') && !l.startsWith('#')).map((l) => l.trim().split(':')[0]);
  assert.deepEqual(interfaces, ['lo']);
  assert.equal(statSync(cloud.file('compute')).isFile(), true);
});

// The target is connected to before the refusal (core/run.ts decides on the open session), so this needs the test server.
test('--isolate-network with a TCP target is refused before anything runs, saying what would work', { skip: MARIADB_SKIP }, async () => {
  const cloud = await fakeCloud({ instances: 1 });
  const r = await leapfrog(['run', '--chain', showingChain('tcp'), '--db', MARIADB_URL, '--state-dir', cloud.state, '--isolate-network']);
  assert.equal(r.exitCode, 2, r.stderr);
  assert.match(r.stderr, new RegExp(`--isolate-network: the target ${MARIADB_URL.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} is reached over TCP`));
  assert.match(r.stderr, /unix socket \(mysql:\/\/user@localhost\?socket=/);
});
