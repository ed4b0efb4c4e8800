/**
 * The state directory does not depend on where the operator stands
 * (issue 15, item 5): --state-dir, then LEAPFROG_STATE_DIR, then an old
 * ./.leapfrog (used and named), then the default; and every hint that
 * names a command carries the flags that reach the same state, chain and
 * target again, so pasted into another shell in another directory it
 * finds the same ledger and cache. Real child processes, real files.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { chooseStateDir, defaultStateDir } from '../src/state-dir.js';
import { CACHE, ROOT, fakeCloud, leapfrog, ledgerRows, runKilledAt, tempDir } from './helpers.js';

const BIN = path.join(ROOT, 'bin', 'leapfrog.js');
/** LEAPFROG_STATE_DIR unset for leapfrog (helpers.ts sets it for every other test). */
const NO_ENV = { LEAPFROG_STATE_DIR: '' };

/** Run a hint as printed, through a shell, standing in `cwd`, with no LEAPFROG_STATE_DIR: as an operator pasting it elsewhere. */
function paste(hint: string, cwd: string) {
  const r = spawnSync('bash', ['-c', hint.replace(/^leapfrog /, `"${process.execPath}" "${BIN}" `)], { cwd, encoding: 'utf8', env: { ...process.env, LEAPFROG_STATE_DIR: '' } });
  return { exitCode: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('the default state directory', () => {
  test('root gets /var/lib/leapfrog; a user $XDG_STATE_HOME/leapfrog, else ~/.local/state/leapfrog (a relative XDG_STATE_HOME is ignored, as the spec says)', () => {
    assert.equal(defaultStateDir({ uid: 0, env: { XDG_STATE_HOME: '/x' }, home: '/root' }), '/var/lib/leapfrog');
    assert.equal(defaultStateDir({ uid: 1000, env: { XDG_STATE_HOME: '/srv/state' }, home: '/home/dba' }), '/srv/state/leapfrog');
    assert.equal(defaultStateDir({ uid: 1000, env: {}, home: '/home/dba' }), '/home/dba/.local/state/leapfrog');
    assert.equal(defaultStateDir({ uid: 1000, env: { XDG_STATE_HOME: 'state' }, home: '/home/dba' }), '/home/dba/.local/state/leapfrog');
  });

  test('precedence: --state-dir, then LEAPFROG_STATE_DIR, then an existing ./.leapfrog directory, then the default', () => {
    const cwd = tempDir('sd-cwd');
    const w = { cwd, uid: 1000, home: '/home/dba' };
    assert.deepEqual(chooseStateDir(undefined, { ...w, env: {} }), { dir: '/home/dba/.local/state/leapfrog', from: 'default' });
    writeFileSync(path.join(cwd, '.leapfrog'), 'not a directory');
    assert.equal(chooseStateDir(undefined, { ...w, env: {} }).from, 'default', 'a file named .leapfrog is not a state directory');
    const other = tempDir('sd-cwd2');
    mkdirSync(path.join(other, '.leapfrog'));
    const legacy = chooseStateDir(undefined, { ...w, cwd: other, env: {} });
    assert.equal(legacy.dir, path.join(other, '.leapfrog'));
    assert.equal(legacy.from, 'cwd');
    assert.match(legacy.note!, new RegExp(`--state-dir ${path.join(other, '.leapfrog')}`));
    assert.deepEqual(chooseStateDir(undefined, { ...w, cwd: other, env: { LEAPFROG_STATE_DIR: 'rel' } }), { dir: path.join(other, 'rel'), from: 'env' });
    assert.deepEqual(chooseStateDir('/flag', { ...w, cwd: other, env: { LEAPFROG_STATE_DIR: '/env' } }), { dir: '/flag', from: 'flag' });
    assert.equal(chooseStateDir(undefined, { ...w, cwd: other, env: { LEAPFROG_STATE_DIR: '' } }).from, 'cwd', 'an empty variable is unset');
  });

  test('the CLI: the default wherever you stand, the variable, the flag over the variable (read only: ledger runs never creates a ledger)', async () => {
    const cwd = tempDir('sd-cli');
    const fileOf = async (env: Record<string, string>, extra: string[] = []) => {
      const r = await leapfrog(['ledger', 'runs', '--format', 'json', ...extra], { cwd, env });
      assert.equal(r.exitCode, 0, r.stderr);
      assert.equal(r.stderr, '', 'no note without an old ./.leapfrog');
      return (JSON.parse(r.stdout) as { ledger: string }).ledger;
    };
    assert.equal(await fileOf(NO_ENV), path.join(defaultStateDir(), 'ledger.sqlite3'));
    assert.equal(await fileOf({ LEAPFROG_STATE_DIR: '/tmp/lf-env-state' }), '/tmp/lf-env-state/ledger.sqlite3');
    assert.equal(await fileOf({ LEAPFROG_STATE_DIR: '/tmp/lf-env-state' }, ['--state-dir', 'mine']), path.join(cwd, 'mine', 'ledger.sqlite3'));
  });
});

describe('an old ./.leapfrog', () => {
  test('a window begun with the old default resumes from it, and leapfrog says which directory it uses and how to keep it', async () => {
    const cloud = await fakeCloud();
    const cwd = tempDir('sd-legacy');
    const legacy = path.join(cwd, '.leapfrog');
    // The window as an earlier release began it: state in ./.leapfrog of where the DBA stood.
    const first = await leapfrog(['run', '--chain', cloud.chain, '--db', cloud.db, '--cache-dir', CACHE, '--state-dir', '.leapfrog', '--until', 'kilo'], { cwd, env: NO_ENV });
    assert.equal(first.exitCode, 0, first.stderr);

    const resumed = await leapfrog(['run', '--chain', cloud.chain, '--db', cloud.db, '--cache-dir', CACHE, '--until', 'liberty'], { cwd, env: NO_ENV });
    assert.equal(resumed.exitCode, 0, resumed.stderr);
    assert.match(resumed.stderr, new RegExp(`note: using the state directory ${legacy} \\(\\./\\.leapfrog in the working directory`));
    assert.match(resumed.stderr, new RegExp(`--state-dir ${legacy} or export LEAPFROG_STATE_DIR=${legacy}`));
    assert.match(resumed.stderr, new RegExp(`The default is now ${defaultStateDir()}`));
    // Both runs are in the one ledger, and the second began at liberty: nothing of kilo ran again.
    const runs = ledgerRows(legacy, 'SELECT id, status FROM runs ORDER BY id');
    assert.deepEqual(runs.map((r) => r.status), ['succeeded', 'succeeded']);
    const second = ledgerRows(legacy, `SELECT DISTINCT release FROM steps WHERE run_id = ${runs[1]!.id}`).map((r) => r.release);
    assert.deepEqual(second, ['liberty']);
    // Its hints name the old directory, so pasted elsewhere they still reach this ledger.
    const hint = /\((leapfrog ledger show \d+[^)]*)\)/.exec(resumed.stdout)?.[1];
    assert.ok(hint, resumed.stdout);
    assert.match(hint, new RegExp(`--state-dir ${legacy}$`));
    const shown = paste(hint, tempDir('sd-elsewhere'));
    assert.equal(shown.exitCode, 0, shown.stderr);
    assert.match(shown.stdout, /liberty/);
  });
});

describe('hints carry the flags that repeat them', () => {
  test('run: the ledger hint, pasted in another directory with no variable, shows that run', async () => {
    const cloud = await fakeCloud();
    const r = await leapfrog(['run', ...cloud.args(), '--until', 'kilo']);
    assert.equal(r.exitCode, 0, r.stderr);
    const hint = /\((leapfrog ledger show 1[^)]*)\)/.exec(r.stdout)?.[1];
    assert.equal(hint, `leapfrog ledger show 1 --state-dir ${cloud.state}`);
    const shown = paste(hint!, tempDir('sd-paste'));
    assert.equal(shown.exitCode, 0, shown.stderr);
    assert.match(shown.stdout, /kilo/);
  });

  test('check-migrations and plan after a crash: the ledger show and run hints name the state, chain, target and cache', async () => {
    const cloud = await fakeCloud();
    await runKilledAt(cloud, 'step-start@kilo/compute/2');
    const c = await leapfrog(['check-migrations', ...cloud.args(), '--format', 'json']);
    const text = (JSON.parse(c.stdout) as { checks: { check: string; details: string }[] }).checks.find((x) => x.check === 'Ledger')!.details;
    assert.match(text, new RegExp(`leapfrog ledger show 1 --state-dir ${cloud.state}\``));
    assert.match(text, new RegExp(`\`leapfrog run --chain ${cloud.chain} --db ${cloud.db} --state-dir ${cloud.state} --cache-dir ${CACHE}\` marks it interrupted`));
    // plan says the same beside the plan.
    const plan = await leapfrog(['plan', ...cloud.args()]);
    assert.equal(plan.exitCode, 0, plan.stderr);
    assert.ok(plan.stderr.includes(`run 1 died between steps; \`leapfrog run --chain ${cloud.chain} --db ${cloud.db} --state-dir ${cloud.state} --cache-dir ${CACHE}\` marks it interrupted`), plan.stderr);
  });

  test('ledger and rollback refusals name the ledger commands with --state-dir', async () => {
    const cloud = await fakeCloud();
    const bad = await leapfrog(['ledger', 'show', '7', '--state-dir', cloud.state]);
    assert.equal(bad.exitCode, 2);
    const run = await leapfrog(['run', ...cloud.args(), '--until', 'kilo']);
    assert.equal(run.exitCode, 0, run.stderr);
    const missing = await leapfrog(['ledger', 'show', '7', '--state-dir', cloud.state]);
    assert.equal(missing.exitCode, 2);
    assert.match(missing.stderr, new RegExp(`\`leapfrog ledger runs --state-dir ${cloud.state}\` lists the runs`));
    const rb = await leapfrog(['rollback', ...cloud.args(), '--to', '99', '--yes']);
    assert.equal(rb.exitCode, 2);
    assert.match(rb.stderr, new RegExp(`\`leapfrog ledger show --state-dir ${cloud.state}\` lists checkpoints`));
  });

  test('bundle import: the run it prints, pasted elsewhere with the target filled in, uses the imported envs offline', async () => {
    const cloud = await fakeCloud();
    const dir = tempDir('sd-bundle');
    const file = path.join(dir, 'window.tar');
    const made = await leapfrog(['bundle', 'create', '--chain', cloud.chain, '-o', file, '--cache-dir', CACHE]);
    assert.equal(made.exitCode, 0, made.stderr);
    const state = path.join(dir, 'state');
    const got = await leapfrog(['bundle', 'import', file, '--state-dir', state], { cwd: dir });
    assert.equal(got.exitCode, 0, got.stderr);
    const hint = /Run it with: (.*)/.exec(got.stdout)?.[1];
    assert.ok(hint, got.stdout);
    assert.match(hint, new RegExp(`--offline --state-dir ${state}$`));
    const ran = paste(`${hint.replace('--db URL', `--db ${cloud.db}`)} --until kilo`, tempDir('sd-offline-host'));
    assert.equal(ran.exitCode, 0, ran.stderr);
    assert.doesNotMatch(ran.stderr, /unpacked into/, 'every env came from the imported cache');
    assert.equal(ledgerRows(state, 'SELECT COUNT(*) AS n FROM runs')[0]!.n, 1);
  });
});
