/**
 * The step sandbox with real child processes: /bin/sh scripts written into a
 * scratch env, the way the runner starts a step's command.
 */
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { childEnvironment, runStepProcess, type StepProcess } from '../src/sandbox/run-step.js';
import { ROOT, tempDir } from './helpers.js';

let work: string;
let envRoot: string;
let seq = 0;

before(() => {
  work = realpathSync(tempDir('sandbox'));
  envRoot = path.join(work, 'env');
  mkdirSync(path.join(envRoot, 'bin'), { recursive: true });
  mkdirSync(path.join(envRoot, 'sbin'), { recursive: true });
  script('bin/show-env', 'echo "cwd=$(pwd)"\n/usr/bin/env | sort\n');
  // Pauses between writes: stdout and stderr are two pipes, so only writes apart in time have an order.
  script('bin/both-streams', 'for i in 1 2 3; do echo "out $i"; sleep 0.1; echo "err $i" >&2; sleep 0.1; done\n');
  script('bin/many-lines', 'i=1\nwhile [ $i -le 50 ]; do echo "line $i"; i=$((i+1)); done\nprintf "no newline at the end"\n');
  script('bin/replays', 'cat "$1"\nexit 1\n');
  script('bin/exits', 'echo "exiting with $1"\nexit "$1"\n');
  script('bin/kills-itself', 'echo "about to die"\nkill -9 $$\n');
  // Records its own pid and its sleep's, so a test can see that both are gone.
  script('bin/sleeps', 'sleep 30 &\necho "$$ $!" > "$1.tmp" && mv "$1.tmp" "$1"\nwait\necho "woke up"\n');
  script('bin/prints-secret', 's=$(cat "$1")\necho "connecting with password=$s to the server"\necho "again: $s" >&2\necho "as a URL: mysql://u:$(cat "$1.url")@h"\n');
  script('bin/slow-secret', 'printf "pass: s3"\nsleep 0.3\nprintf "cr3t-pw and more\\n"\n');
  script('bin/leaves-a-child', 'sleep 30 &\necho "$!" > "$1.tmp" && mv "$1.tmp" "$1"\necho "done, sleep left behind"\n');
  // A two-byte character and a non-ASCII secret, each split across two writes, the secret last with no newline.
  script('bin/split-utf8', 'printf "caf\\303"\nsleep 0.2\nprintf "\\251 pw=p\\303"\nsleep 0.2\nprintf "\\244ssw\\303\\266rd"\n');
  script('sbin/same-name', 'echo "from the env sbin"\n');
  script('bin/same-name', 'echo "from the env bin"\n');
  writeFileSync(path.join(envRoot, 'bin', 'not-executable'), '#!/bin/sh\necho hi\n', { mode: 0o644 });
});

after(() => {
  rmSync(work, { recursive: true, force: true });
});

function script(rel: string, body: string): void {
  const file = path.join(envRoot, rel);
  writeFileSync(file, `#!/bin/sh\n${body}`);
  chmodSync(file, 0o755);
}

/** A fresh run directory (cwd, home, tmp, log) for one step. */
function step(argv: string[], over: Partial<StepProcess> = {}): StepProcess {
  const dir = path.join(work, `step-${++seq}`);
  for (const d of ['cwd', 'home', 'tmp']) mkdirSync(path.join(dir, d), { recursive: true });
  return {
    argv,
    shownArgv: argv,
    envRoot,
    envPath: ['bin'],
    envVars: { PYTHONPATH: `${envRoot}/lib/python`, LEAPFROG_ENV_MARK: 'from-the-env' },
    cwd: path.join(dir, 'cwd'),
    home: path.join(dir, 'home'),
    tmp: path.join(dir, 'tmp'),
    logFile: path.join(dir, 'step.log'),
    timeoutMs: 20_000,
    secrets: [],
    ...over,
  };
}

/** KEY=value lines of `env` output in the log, as a record. */
function envFromLog(log: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of log.split('\n')) {
    const m = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    if (m) out[m[1]!] = m[2]!;
  }
  return out;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function waitFor(cond: () => boolean, ms: number): Promise<boolean> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (cond()) return true;
    await new Promise((r) => setTimeout(r, 25));
  }
  return cond();
}

test('the child gets a clean environment: nothing of the parent but locale and time zone', async () => {
  const saved = { ...process.env };
  process.env.LEAPFROG_TEST_SECRET = 'hunter2';
  process.env.AWS_SECRET_ACCESS_KEY = 'AKIA-not-for-children';
  process.env.LEAPFROG_DB_PASSWORD = 'db-password';
  process.env.LANG = 'C.UTF-8';
  process.env.TZ = 'Europe/Paris';
  try {
    const p = step(['show-env']);
    const o = await runStepProcess(p);
    assert.equal(o.exitCode, 0, o.tail.join('\n'));
    const log = readFileSync(p.logFile, 'utf8');
    const env = envFromLog(log);
    for (const leaked of ['hunter2', 'AKIA-not-for-children', 'db-password']) assert.ok(!log.includes(leaked), `${leaked} reached the child`);
    assert.equal(env.LEAPFROG_TEST_SECRET, undefined);
    assert.equal(env.AWS_SECRET_ACCESS_KEY, undefined);
    assert.equal(env.LANG, 'C.UTF-8');
    assert.equal(env.TZ, 'Europe/Paris');
    assert.equal(env.HOME, p.home);
    assert.equal(env.TMPDIR, p.tmp);
    assert.equal(env.PYTHONPATH, `${envRoot}/lib/python`);
    assert.equal(env.LEAPFROG_ENV_MARK, 'from-the-env');
    assert.equal(env.cwd, p.cwd, 'the child runs in the given cwd');
    const dirs = env.PATH!.split(':');
    assert.equal(dirs[0], path.join(envRoot, 'bin'), 'the env bin comes first');
    assert.ok(dirs.includes('/usr/bin') && dirs.includes('/bin'), `system dirs follow: ${env.PATH}`);
    assert.ok(dirs.indexOf('/usr/bin') > 0);
    // Only what the sandbox sets (plus what sh itself adds).
    const allowed = new Set(['PATH', 'HOME', 'TMPDIR', 'LANG', 'TZ', 'PYTHONPATH', 'LEAPFROG_ENV_MARK', 'PWD', 'SHLVL', 'OLDPWD', '_', 'cwd']);
    assert.deepEqual(Object.keys(env).filter((k) => !allowed.has(k)), []);
  } finally {
    for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
    Object.assign(process.env, saved);
  }
});

test('childEnvironment: locale vars only when set, env bin dirs in order before the system ones', () => {
  const env = childEnvironment(
    { envRoot: '/opt/env', envPath: ['sbin', 'bin'], envVars: { A: '1' }, home: '/h', tmp: '/t' },
    { LANG: 'de_DE.UTF-8', SECRET: 'x', PATH: '/home/me/bin:/usr/bin', HOME: '/home/me' },
  );
  assert.deepEqual(Object.keys(env).sort(), ['A', 'HOME', 'LANG', 'PATH', 'TMPDIR']);
  assert.equal(env.LANG, 'de_DE.UTF-8');
  assert.equal(env.HOME, '/h');
  assert.equal(env.TMPDIR, '/t');
  const dirs = env.PATH!.split(':');
  assert.deepEqual(dirs.slice(0, 2), ['/opt/env/sbin', '/opt/env/bin']);
  assert.ok(!dirs.includes('/home/me/bin'), 'the parent PATH is not inherited');
  assert.ok(dirs.includes('/usr/bin'));
});

test('a script in the env bin is found by bare name, in envPath order', async () => {
  const p = step(['same-name'], { envPath: ['sbin', 'bin'] });
  const o = await runStepProcess(p);
  assert.equal(o.exitCode, 0);
  assert.deepEqual(o.tail, ['from the env sbin']);
});

test('stdout and stderr both land in the log, interleaved, under a header line', async () => {
  const p = step(['both-streams']);
  const o = await runStepProcess(p);
  assert.equal(o.exitCode, 0);
  const lines = readFileSync(p.logFile, 'utf8').trimEnd().split('\n');
  assert.match(lines[0]!, /^# \d{4}-\d\d-\d\dT.* \$ both-streams$/);
  const body = lines.filter((l) => !l.startsWith('#'));
  assert.deepEqual([...body].sort(), ['err 1', 'err 2', 'err 3', 'out 1', 'out 2', 'out 3']);
  // Interleaved as written, not all of stdout then all of stderr.
  assert.ok(body.indexOf('out 1') < body.indexOf('err 1') && body.indexOf('err 1') < body.indexOf('out 2'), `not interleaved: ${body.join(' | ')}`);
  assert.match(lines.at(-1)!, /^# .* exit 0 \(/);
  assert.deepEqual([...o.tail].sort(), body.sort());
});

test('tail keeps the last 20 lines, including a last line without a newline, and marks what it left out', async () => {
  const p = step(['many-lines']);
  const o = await runStepProcess(p);
  assert.equal(o.exitCode, 0);
  assert.equal(o.tail.length, 21);
  assert.equal(o.tail[0], '…');
  assert.equal(o.tail[1], 'line 32');
  assert.equal(o.tail[19], 'line 50');
  assert.equal(o.tail[20], 'no newline at the end');
  const log = readFileSync(p.logFile, 'utf8');
  assert.ok(log.includes('line 1\n') && log.includes('line 50\n'), 'the log keeps every line');
});

test("a real tool's failure keeps its error line in the tail, under the SQL it printed after it, without ANSI codes", async () => {
  // Debian nova 26's own output (fixtures/outputs/README.md): the error, then 20 lines of SQL and a second traceback.
  const p = step(['replays', path.join(ROOT, 'fixtures', 'outputs', 'nova-zed-db-sync-rerun.log')]);
  const o = await runStepProcess(p);
  assert.equal(o.exitCode, 1);
  assert.ok(o.tail.some((l) => l.includes("Can't DROP INDEX `shadow_instance_extra_idx`")), o.tail.join('\n'));
  assert.ok(o.tail.includes('Traceback (most recent call last):'));
  assert.ok(o.tail.every((l) => !l.includes('\u001b')), 'no escape codes');
  assert.ok(readFileSync(p.logFile, 'utf8').includes('\u001b[00m'), 'the log itself is verbatim');
});

test('secrets are masked in the log and the tail, raw and percent-encoded, when the child prints them', async () => {
  const secret = 'Pa55-w0rd! @:/%';
  const p = step(['prints-secret', path.join(work, 'secret.txt')], { secrets: [secret] });
  writeFileSync(path.join(work, 'secret.txt'), secret);
  writeFileSync(path.join(work, 'secret.txt.url'), encodeURIComponent(secret));
  const o = await runStepProcess(p);
  assert.equal(o.exitCode, 0);
  const log = readFileSync(p.logFile, 'utf8');
  assert.ok(!log.includes(secret) && !log.includes(encodeURIComponent(secret)), `the secret is in the log:\n${log}`);
  assert.ok(log.includes('connecting with password=**** to the server'));
  assert.ok(log.includes('again: ****'));
  assert.ok(log.includes('as a URL: mysql://u:****@h'), log);
  assert.ok(!o.tail.join('\n').includes(secret));
  assert.ok(o.tail.includes('connecting with password=**** to the server'));
});

test('a secret in argv, raw or in any encoding, is refused before anything starts: argv is public in /proc', async () => {
  const secret = 'Pa55 w0rd@x';
  for (const arg of [secret, `--url=mysql://u:${encodeURIComponent(secret)}@h/db`, new URLSearchParams({ pw: secret }).toString()]) {
    const p = step(['prints-secret', arg], { secrets: [secret] });
    await assert.rejects(runStepProcess(p), (err: Error) => /argument 2 carries the database password/.test(err.message) && !err.message.includes(secret));
    assert.ok(!existsSync(p.logFile), 'nothing ran, no log was opened');
  }
});

test('a secret the child prints across two writes is still masked', async () => {
  const secret = 's3cr3t-pw';
  const p = step(['slow-secret'], { secrets: [secret] });
  const o = await runStepProcess(p);
  assert.equal(o.exitCode, 0);
  const log = readFileSync(p.logFile, 'utf8');
  assert.ok(!log.includes('s3cr3t-pw'), `the secret is in the log:\n${log}`);
  assert.ok(log.includes('pass: **** and more'), log);
  assert.deepEqual(o.tail, ['pass: **** and more']);
});

test('output split inside a UTF-8 character or a secret comes out whole and masked', async () => {
  const secret = 'pässwörd';
  const p = step(['split-utf8'], { secrets: [secret] });
  const o = await runStepProcess(p);
  assert.equal(o.exitCode, 0);
  assert.deepEqual(o.tail, ['café pw=****']);
  const log = readFileSync(p.logFile, 'utf8');
  assert.ok(log.includes('café pw=****'), log);
  assert.ok(!log.includes('\ufffd'), `mangled characters in the log:\n${log}`);
});

test('exit codes are reported', async () => {
  for (const code of [0, 1, 3, 42]) {
    const p = step(['exits', String(code)]);
    const o = await runStepProcess(p);
    assert.equal(o.exitCode, code);
    assert.equal(o.signal, null);
    assert.equal(o.timedOut, false);
    assert.equal(o.spawnError, undefined);
    assert.deepEqual(o.tail, [`exiting with ${code}`]);
    assert.match(readFileSync(p.logFile, 'utf8'), new RegExp(`# .* exit ${code} \\(`));
  }
});

test('a child killed by a signal reports the signal', async () => {
  const p = step(['kills-itself']);
  const o = await runStepProcess(p);
  assert.equal(o.signal, 'SIGKILL');
  assert.equal(o.exitCode, null);
  assert.equal(o.timedOut, false);
  assert.equal(o.spawnError, undefined);
  assert.deepEqual(o.tail, ['about to die']);
  assert.match(readFileSync(p.logFile, 'utf8'), /killed by SIGKILL/);
});

test('a command that cannot start gives spawnError, not a crash', async () => {
  for (const argv of [['no-such-command-anywhere'], [path.join(envRoot, 'bin', 'not-executable')]]) {
    const p = step(argv);
    const o = await runStepProcess(p);
    assert.ok(o.spawnError, `no spawnError for ${argv[0]}: ${JSON.stringify(o)}`);
    assert.match(o.spawnError, /ENOENT|EACCES/);
    assert.equal(o.exitCode, null);
    assert.equal(o.timedOut, false);
    assert.match(readFileSync(p.logFile, 'utf8'), /could not start/);
  }
});

test('a timeout stops the child and everything it started', async () => {
  const pidFile = path.join(work, 'timeout.pid');
  const p = step(['sleeps', pidFile], { timeoutMs: 300 });
  const t0 = Date.now();
  const o = await runStepProcess(p);
  assert.equal(o.timedOut, true);
  assert.notEqual(o.exitCode, 0);
  assert.ok(Date.now() - t0 < 10_000, `took ${Date.now() - t0} ms to give up on a 300 ms timeout`);
  const pids = readFileSync(pidFile, 'utf8').trim().split(' ').map(Number);
  assert.equal(pids.length, 2);
  for (const pid of pids) assert.ok(await waitFor(() => !alive(pid), 5_000), `process ${pid} is still running`);
  const log = readFileSync(p.logFile, 'utf8');
  assert.match(log, /timed out after 300 ms/);
  assert.ok(!log.includes('woke up'));
});

test('processes a step leaves in the background do not outlive it', async () => {
  const pidFile = path.join(work, 'leftover.pid');
  const p = step(['leaves-a-child', pidFile]);
  const t0 = Date.now();
  const o = await runStepProcess(p);
  assert.equal(o.exitCode, 0);
  assert.ok(Date.now() - t0 < 10_000, `waited ${Date.now() - t0} ms for a background process`);
  assert.deepEqual(o.tail, ['done, sleep left behind']);
  const pid = Number(readFileSync(pidFile, 'utf8'));
  assert.ok(await waitFor(() => !alive(pid), 5_000), `the background sleep ${pid} is still running`);
});

test('an AbortSignal cancels a running child', async () => {
  const pidFile = path.join(work, 'abort.pid');
  const ac = new AbortController();
  const p = step(['sleeps', pidFile], { signal: ac.signal });
  const t0 = Date.now();
  const running = runStepProcess(p);
  await waitFor(() => {
    try {
      return readFileSync(pidFile, 'utf8').trim() !== '';
    } catch {
      return false;
    }
  }, 5_000);
  ac.abort();
  const o = await running;
  assert.ok(Date.now() - t0 < 10_000, `took ${Date.now() - t0} ms to cancel`);
  assert.notEqual(o.exitCode, 0);
  assert.equal(o.timedOut, false);
  assert.equal(o.spawnError, undefined);
  const pids = readFileSync(pidFile, 'utf8').trim().split(' ').map(Number);
  assert.equal(pids.length, 2);
  for (const pid of pids) assert.ok(await waitFor(() => !alive(pid), 5_000), `process ${pid} is still running`);
  const log = readFileSync(p.logFile, 'utf8');
  assert.ok(!log.includes('woke up'));
  assert.match(log, /# .* cancelled/);
});

test('an AbortSignal already aborted stops the child at once', async () => {
  const ac = new AbortController();
  ac.abort();
  const p = step(['sleeps', path.join(work, 'pre-aborted.pid')], { signal: ac.signal });
  const t0 = Date.now();
  const o = await runStepProcess(p);
  assert.ok(Date.now() - t0 < 10_000, `took ${Date.now() - t0} ms`);
  assert.notEqual(o.exitCode, 0);
  assert.equal(o.spawnError, undefined);
});

test('a log file that cannot be created is an error, not a crash', async () => {
  const p = step(['exits', '0'], { logFile: path.join(work, 'no-such-dir', 'step.log') });
  await assert.rejects(runStepProcess(p), /no-such-dir/);
});
