/**
 * Root-filesystem envs end to end, with real parts only: `envs build
 * --debian` runs mmdebstrap against the Debian archive, the tarball is
 * served by a real local HTTP server, provisioned into a fresh cache, and a
 * tiny chain's steps run in it under bubblewrap on a real SQLite target.
 *
 * The Debian builds are slow (a minute or two each on a busy machine), so
 * their results are kept outside the repository, keyed by what decides them
 * (suite, packages, mirror, variant): ~/.cache/leapfrog-test/rootfs/<key>/
 * (or $LEAPFROG_TEST_ROOTFS_CACHE). A cold entry is built twice and the two
 * sha256 compared; the second test run reuses it.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, utimesSync, writeFileSync, symlinkSync, linkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import Database from 'better-sqlite3';
import * as tar from 'tar';
import { parse, stringify } from 'yaml';
import { startTarballServer, type TarballServer } from '../fixtures/http-server.js';
import { dropDatabases, leapfrog, MARIADB_REQUIRED, MARIADB_SKIP, MARIADB_SOCKET, MARIADB_URL, scalar, tempDir, uniquePrefix, withMariadb } from './helpers.js';

type Json = Record<string, any>;
const MIRROR = 'http://deb.debian.org/debian';
const STORE = process.env.LEAPFROG_TEST_ROOTFS_CACHE ?? path.join(os.homedir(), '.cache', 'leapfrog-test', 'rootfs');

interface Built {
  name: string;
  envFile: string;
  tarball: string;
  sha256: string;
  /** sha256 of the second build made when the entry was cold. */
  rebuilt: string;
}

/** A Debian env, built (twice) when not already in the store. */
async function debianEnv(name: string, suite: string, packages: string[]): Promise<Built> {
  // `layout` changes when what envs build writes changes, so old entries are not reused.
  const inputs = { suite, packages, mirror: MIRROR, variant: 'essential', layout: 5 };
  const dir = path.join(STORE, createHash('sha256').update(JSON.stringify(inputs)).digest('hex').slice(0, 16));
  const record = path.join(dir, 'built.json');
  if (!existsSync(record)) {
    const work = `${dir}.tmp-${process.pid}`;
    rmSync(work, { recursive: true, force: true });
    const shas: string[] = [];
    for (const out of ['a', 'b']) {
      const r = await leapfrog(['envs', 'build', '--debian', suite, '--packages', packages.join(','), '--mirror', MIRROR, '--name', name, '--out', path.join(work, out), '--format', 'json']);
      assert.equal(r.exitCode, 0, r.stderr.slice(-3000));
      shas.push((JSON.parse(r.stdout) as Json).sha256);
    }
    writeFileSync(path.join(work, 'built.json'), JSON.stringify({ inputs, name, sha256: shas[0], rebuilt: shas[1], builtAt: new Date().toISOString() }));
    rmSync(path.join(work, 'b'), { recursive: true });
    mkdirSync(path.dirname(dir), { recursive: true });
    rmSync(dir, { recursive: true, force: true });
    renameSync(work, dir);
  }
  const b = JSON.parse(readFileSync(record, 'utf8')) as Json;
  const envFile = path.join(dir, 'a', `${name}.yaml`);
  // NAME.tar.zst since layout 5 (envs build compresses with zstd by default): the env file names it.
  const tarball = path.join(dir, 'a', (parse(readFileSync(envFile, 'utf8')) as Json).source.file as string);
  return { name, envFile, tarball, sha256: b.sha256, rebuilt: b.rebuilt };
}

let server: TarballServer;
let bullseye: Built;
let bookworm: Built;
let trixie: Built;
let envDir: string;
let sharedCache: string;
const cleanup: string[] = [];

before(async () => {
  server = await startTarballServer();
  // bookworm with python3 and pymysql (the sync step drives SQLite and MariaDB), bullseye and trixie with python3-minimal only.
  bullseye = await debianEnv('bullseye-py', 'bullseye', ['python3-minimal']);
  bookworm = await debianEnv('bookworm-py', 'bookworm', ['python3', 'python3-pymysql']);
  trixie = await debianEnv('trixie-py', 'trixie', ['python3-minimal']);
  envDir = tempDir('rootfs-envs');
  sharedCache = path.join(tempDir('rootfs-cache'), 'cache');
  cleanup.push(envDir, path.dirname(sharedCache));
  for (const b of [bullseye, bookworm, trixie]) {
    const doc = parse(readFileSync(b.envFile, 'utf8')) as Json;
    server.serve(path.basename(b.tarball), b.tarball);
    doc.source = { url: server.url(path.basename(b.tarball)), sha256: doc.source.sha256 };
    writeFileSync(path.join(envDir, `${b.name}.yaml`), stringify(doc));
  }
});

const scratch: string[] = [];
after(async () => {
  await server.close();
  await dropDatabases(scratch);
  for (const d of cleanup) rmSync(d, { recursive: true, force: true });
});

test('two mmdebstrap builds of the same suite and packages give the same sha256, and the env file says how it was built', () => {
  for (const b of [bullseye, bookworm, trixie]) {
    assert.match(b.sha256, /^[0-9a-f]{64}$/);
    // bullseye's python3.9 .pyc files included (src/envs/build-debian.ts, PYC_HOOK).
    assert.equal(b.rebuilt, b.sha256, `${b.name}: the second build differs`);
    const doc = parse(readFileSync(b.envFile, 'utf8')) as Json;
    assert.equal(doc.kind, 'rootfs');
    assert.equal(doc.source.sha256, b.sha256);
    assert.equal(doc.source.file, path.basename(b.tarball));
    assert.equal(doc.build.mirror, MIRROR);
    // Released suites get their -updates and -security fixes.
    assert.ok(doc.build.sources.some((s: string) => s.includes(`${doc.build.debian}-security`)), doc.build.sources.join('\n'));
  }
});

test('--dir packs a tree deterministically: sorted, owners 0, mtimes clamped to SOURCE_DATE_EPOCH, hard links kept; a FIFO is refused', async () => {
  const dir = tempDir('packdir');
  cleanup.push(dir);
  const tree = path.join(dir, 'tree');
  mkdirSync(path.join(tree, 'usr', 'bin'), { recursive: true });
  mkdirSync(path.join(tree, 'dev'));
  writeFileSync(path.join(tree, 'usr', 'bin', 'tool'), '#!/bin/sh\necho tool\n', { mode: 0o755 });
  writeFileSync(path.join(tree, 'b-old'), 'old\n');
  writeFileSync(path.join(tree, 'a-new'), 'new\n');
  linkSync(path.join(tree, 'usr', 'bin', 'tool'), path.join(tree, 'usr', 'bin', 'tool2'));
  symlinkSync('usr/bin', path.join(tree, 'bin'));
  const SDE = 1_700_000_000;
  utimesSync(path.join(tree, 'b-old'), SDE - 86_400, SDE - 86_400);
  writeFileSync(path.join(tree, 'dev', 'null-ish'), 'left out\n');
  const pack = (name: string, env: Record<string, string> = {}) => leapfrog(['envs', 'build', '--dir', tree, '--name', name, '--out', path.join(dir, 'out'), '--format', 'json'], { env: { ...process.env, SOURCE_DATE_EPOCH: String(SDE), ...env } as Record<string, string> });
  const one = await pack('one');
  assert.equal(one.exitCode, 0, one.stderr);
  const two = await pack('two');
  assert.equal(two.exitCode, 0, two.stderr);
  assert.equal((JSON.parse(one.stdout) as Json).sha256, (JSON.parse(two.stdout) as Json).sha256);
  const headers: Json[] = [];
  // node-tar reads no zstd on Node 20: the tar inside, as the zstd program gives it.
  writeFileSync(path.join(dir, 'out', 'one.tar'), execFileSync('zstd', ['-d', '-c', path.join(dir, 'out', 'one.tar.zst')]));
  await tar.t({ file: path.join(dir, 'out', 'one.tar'), onReadEntry: (e) => headers.push({ path: e.path, type: e.type, uid: e.header.uid, mtime: e.mtime ? e.mtime.getTime() / 1000 : undefined, linkpath: e.linkpath }) });
  assert.deepEqual(headers.map((h) => h.path), ['a-new', 'b-old', 'bin', 'dev/', 'usr/', 'usr/bin/', 'usr/bin/tool', 'usr/bin/tool2']);
  for (const h of headers) assert.ok(!h.uid, `${h.path}: owner ${h.uid}`);
  assert.equal(headers.find((h) => h.path === 'a-new')!.mtime, SDE, 'a file newer than the source date is clamped');
  assert.equal(headers.find((h) => h.path === 'b-old')!.mtime, SDE - 86_400, 'an older file keeps its mtime');
  assert.equal(headers.find((h) => h.path === 'usr/bin/tool2')!.type, 'Link');
  // Touching the tree after the source date changes nothing in the tarball.
  utimesSync(path.join(tree, 'a-new'), SDE + 5000, SDE + 5000);
  const three = await pack('three');
  assert.equal((JSON.parse(three.stdout) as Json).sha256, (JSON.parse(one.stdout) as Json).sha256);

  execFileSync('mkfifo', [path.join(tree, 'fifo')]);
  const refused = await pack('fifo');
  assert.equal(refused.exitCode, 2, refused.stderr);
  assert.match(refused.stderr, /fifo is a device, FIFO or socket; an env may hold only files, directories and links/);
  assert.ok(!existsSync(path.join(dir, 'out', 'fifo.tar.zst')));
});

/** A one-project chain whose version is table ver(v), on a SQLite directory or the MariaDB server (over TCP, or a socket). */
async function world(stepsOf: (places: { state: string; cache: string }) => Json[], target: string | undefined = undefined) {
  const dir = tempDir('rootfs-world');
  const state = path.join(dir, 'state');
  // One cache for every world: the first run provisions over HTTP, later ones reuse it (content-addressed).
  const cache = sharedCache;
  const steps = stepsOf({ state, cache });
  cleanup.push(dir);
  const db = path.join(dir, 'db');
  mkdirSync(db);
  const name = target ? uniquePrefix() + 'app' : 'app';
  if (target) {
    scratch.push(name);
    await withMariadb((c) => c.query(`CREATE DATABASE \`${name}\`; CREATE TABLE \`${name}\`.ver (v INTEGER); INSERT INTO \`${name}\`.ver VALUES (1)`));
  } else {
    const d = new Database(path.join(db, 'app.sqlite3'));
    d.exec('CREATE TABLE ver (v INTEGER); INSERT INTO ver VALUES (1)');
    d.close();
  }
  const chain = path.join(dir, 'chain.yaml');
  writeFileSync(
    chain,
    stringify({
      chain: 'rootfs-tiny',
      envs: envDir,
      projects: { app: { databases: { main: name }, version: { main: { kind: 'sql', query: 'SELECT v FROM ver', numeric: true } }, start: { main: 1 }, config: { 'db.conf': '{{ db.main.url }}\n' } } },
      releases: [{ release: 'r1', steps }],
    }),
  );
  const version = async (): Promise<unknown> =>
    target ? withMariadb(async (c) => ((await c.query(`SELECT v FROM \`${name}\`.ver`))[0] as { v: number }[])[0]!.v) : scalar(path.join(db, 'app.sqlite3'), 'SELECT v FROM ver');
  return { dir, db, state, cache, version, args: ['--chain', chain, '--db', target ?? `sqlite:${db}`, '--state-dir', state, '--cache-dir', cache] };
}

const logOf = (runDir: string, step: string) => {
  const name = readdirSync(path.join(runDir, 'logs')).find((f) => f.endsWith(`-${step}.log`));
  assert.ok(name, `a log for ${step}`);
  return readFileSync(path.join(runDir, 'logs', name), 'utf8');
};

/** A sync step in the bookworm env: its python moves ver to 2, through sqlite3 or pymysql (TCP or the server's socket). */
const SYNC_PY = `import sys, urllib.parse as u
url = open(sys.argv[1]).readline().strip()
if url.startswith('sqlite:///'):
    import sqlite3
    c = sqlite3.connect(url[len('sqlite:///'):])
else:
    import pymysql
    p = u.urlsplit(url)
    q = dict(u.parse_qsl(p.query))
    c = pymysql.connect(host=p.hostname, port=p.port or 3306, unix_socket=q.get('unix_socket'), user=u.unquote(p.username or ''), password=u.unquote(p.password or ''), database=p.path[1:])
c.cursor().execute('UPDATE ver SET v = 2')
c.commit()
print('python', sys.version.split()[0])`;
const SYNC = { project: 'app', env: 'bookworm-py', name: 'sync with the env python', sync: ['python3', '-c', SYNC_PY, "{{ config['db.conf'] }}"], expect: { main: 2 } };

/** Prints what a step can do to the places it must not touch; each line says WROTE/SEES or refused/absent. */
const PROBE = [
  'for f in /probe /usr/bin/probe "$1/probe" "$2/probe"; do if touch "$f" 2>/dev/null; then echo "WROTE $f"; else echo "refused $f"; fi; done',
  'for f in "$1" "$2/ledger.sqlite3" "$3"; do if test -e "$f"; then echo "SEES $f"; else echo "absent $f"; fi; done',
  'touch "$HOME/ok" && echo "home writable"',
  'touch /tmp/ok && echo "tmp writable"',
  'echo "pycache: ${PYTHONDONTWRITEBYTECODE:-unset}"',
  // mmdebstrap leaves no /etc/resolv.conf in the tree; eventlet (keystone-manage) refuses to import without one.
  'if grep -q "^nameserver " /etc/resolv.conf; then echo "resolver given"; else echo "no resolver"; fi',
  'if touch /etc/resolv.conf 2>/dev/null; then echo "WROTE /etc/resolv.conf"; fi',
].join('\n');

/**
 * What each suite ships (https://packages.debian.org/<suite>/python3-minimal and .../libc6):
 * the interpreter reports its version and the glibc it runs on (os.confstr, glibc's own answer).
 */
const RELEASES = [
  { env: () => bullseye, python: '3.9', glibc: '2.31', debian: 11 },
  { env: () => bookworm, python: '3.11', glibc: '2.36', debian: 12 },
  { env: () => trixie, python: '3.13', glibc: '2.41', debian: 13 },
];
const VERSIONS = `python3 -c 'import os, sys; print("python:", sys.version.split()[0]); print("glibc:", os.confstr("CS_GNU_LIBC_VERSION"))'; echo "debian: $(cat /etc/debian_version)"`;

test('a rootfs env provisioned over HTTP runs its steps under bubblewrap: each of bullseye, bookworm and trixie reports its own python and glibc, / and the cache read-only, the host unseen', async () => {
  const hostMarker = path.join(os.homedir(), '.cache', 'leapfrog-test');
  const w = await world(({ state, cache }) => [
    ...RELEASES.map(({ env }) => ({ project: 'app', env: env().name, name: `${env().name} versions`, check: ['sh', '-c', VERSIONS] })),
    { project: 'app', env: bookworm.name, name: 'probe the sandbox', check: ['sh', '-c', PROBE, 'probe', cache, state, hostMarker] },
    SYNC,
  ]);
  const pre = await leapfrog(['check-migrations', ...w.args, '--format', 'json']);
  const envsRow = (JSON.parse(pre.stdout) as Json).checks.find((c: Json) => c.check === 'Envs');
  assert.ok(envsRow && envsRow.result !== 'Failure', pre.stdout);

  const r = await leapfrog(['run', ...w.args, '--format', 'json']);
  assert.equal(r.exitCode, 0, r.stderr);
  const run = JSON.parse(r.stdout) as Json;
  assert.equal(await w.version(), 2, 'the sync written from inside the sandbox reached the target');

  // Each step reports the interpreter and C library of its own release, whatever the host's (bookworm: python 3.11, glibc 2.36).
  for (const [i, r] of RELEASES.entries()) {
    const versions = logOf(run.runDir, `r1-app-${i + 1}`);
    assert.match(versions, new RegExp(`^python: ${r.python.replace('.', '\\.')}\\.\\d+$`, 'm'), `${r.env().name}: ${versions}`);
    assert.match(versions, new RegExp(`^glibc: glibc ${r.glibc.replace('.', '\\.')}$`, 'm'), `${r.env().name}: ${versions}`);
    assert.match(versions, new RegExp(`^debian: ${r.debian}\\.`, 'm'), `${r.env().name}: ${versions}`);
  }

  const probe = logOf(run.runDir, `r1-app-${RELEASES.length + 1}`);
  for (const f of ['/probe', '/usr/bin/probe', `${w.cache}/probe`]) assert.match(probe, new RegExp(`^refused ${f}$`, 'm'), probe);
  // The state directory is not there at all: under /tmp (as here) the step's touch lands in its private
  // tmpfs, elsewhere on the read-only /; either way nothing reaches the host's.
  for (const f of [`${w.cache}/probe`, `${w.state}/probe`]) assert.ok(!existsSync(f), `${f} was written on the host`);
  for (const f of [w.cache, `${w.state}/ledger.sqlite3`, hostMarker]) assert.match(probe, new RegExp(`^absent ${f}$`, 'm'), probe);
  assert.match(probe, /^home writable$/m);
  assert.match(probe, /^tmp writable$/m);
  assert.match(probe, /^pycache: 1$/m);
  assert.match(probe, /^resolver given$/m);
  assert.doesNotMatch(probe.replace(`WROTE ${w.state}/probe`, ''), /^(WROTE|SEES) /m);
  assert.match(logOf(run.runDir, `r1-app-${RELEASES.length + 2}`), /^python 3\.11\./m);

  // The cache treats it like any env: listed with its packages, verified intact after the steps ran.
  const list = await leapfrog(['envs', 'list', '--cache-dir', w.cache, '--format', 'json']);
  assert.equal(list.exitCode, 0, list.stderr);
  const entries = (JSON.parse(list.stdout) as Json).entries as Json[];
  const bw = entries.find((e) => e.sha256 === bookworm.sha256);
  assert.ok(bw, list.stdout);
  assert.equal(bw.build.debian, 'bookworm');
  assert.match(bw.packages.find((p: Json) => p.name === 'python3').version, /^3\.11\./);
  const text = await leapfrog(['envs', 'list', '--cache-dir', w.cache]);
  assert.match(text.stdout, /python3 3\.11\./);
  const verify = await leapfrog(['envs', 'verify', '--cache-dir', w.cache]);
  assert.equal(verify.exitCode, 0, verify.stdout + verify.stderr);
  assert.match(verify.stdout, new RegExp(`^ok  ${bookworm.sha256.slice(0, 12)} bookworm-py`, 'm'));
});

test('without bwrap on PATH: check-migrations fails the Envs check and run refuses before anything runs, saying what to install', async () => {
  const w = await world(() => [{ project: 'app', env: trixie.name, check: ['true'] }]);
  const env = { ...process.env, PATH: '/nonexistent' } as Record<string, string>;
  const pre = await leapfrog(['check-migrations', ...w.args, '--format', 'json'], { env });
  assert.equal(pre.exitCode, 2, pre.stderr);
  const envsRow = (JSON.parse(pre.stdout) as Json).checks.find((c: Json) => c.check === 'Envs');
  assert.equal(envsRow.result, 'Failure');
  assert.match(envsRow.details ?? envsRow.message ?? JSON.stringify(envsRow), /bwrap was not found on PATH.*apt-get install bubblewrap/);
  const r = await leapfrog(['run', ...w.args], { env });
  assert.equal(r.exitCode, 2, r.stderr);
  assert.match(r.stderr, /env trixie-py is a rootfs env, but bwrap was not found on PATH: .*apt-get install bubblewrap.*Nothing was run/s);
  const shown = await leapfrog(['ledger', 'runs', '--state-dir', w.state, '--format', 'json']);
  assert.doesNotMatch(shown.stdout, /"step_id"/);
});

// The socket of the test run's server (npm test's own mariadbd keeps it under the temporary directory,
// which the sandbox replaces by a private tmpfs: the bind of the socket itself must still reach it).
const SOCKET = MARIADB_SOCKET;
test('on MariaDB: a rootfs step reaches the server over TCP (host network), and through its socket with --isolate-network', { skip: MARIADB_SKIP || (!MARIADB_REQUIRED && !SOCKET ? 'the test server\'s socket is unknown: set LEAPFROG_TEST_MARIADB_SOCKET' : false) }, async () => {
  const tcp = await world(() => [SYNC], MARIADB_URL);
  const r = await leapfrog(['run', ...tcp.args, '--format', 'json']);
  assert.equal(r.exitCode, 0, r.stderr);
  assert.equal(await tcp.version(), 2);
  assert.match(logOf((JSON.parse(r.stdout) as Json).runDir, 'r1-app-1'), /^python 3\.11\./m);

  const sock = await world(() => [SYNC], `mysql://root@localhost?socket=${SOCKET}`);
  const s = await leapfrog(['run', ...sock.args, '--isolate-network', '--format', 'json']);
  assert.equal(s.exitCode, 0, s.stderr);
  assert.equal(await sock.version(), 2);
});

test('a target directory that holds the ledger is never bound writable into a rootfs sandbox: refused before the step is recorded', async () => {
  const w = await world(() => [{ project: 'app', env: trixie.name, check: ['true'] }]);
  // The state directory inside the SQLite target's directory: binding the target would expose the ledger.
  const args = w.args.map((a) => (a === w.state ? path.join(w.db, 'state') : a));
  const r = await leapfrog(['run', ...args]);
  assert.equal(r.exitCode, 2, r.stderr);
  assert.match(r.stderr, new RegExp(`would get ${w.db} writable, which holds ${path.join(w.db, 'state', 'ledger.sqlite3')} \\(the env cache or the ledger\\)`));
  const runs = await leapfrog(['ledger', 'show', '--state-dir', path.join(w.db, 'state'), '--format', 'json']);
  assert.deepEqual((JSON.parse(runs.stdout) as Json).steps, []);
});

test('a rootfs step past its timeout is stopped, sandbox and all', async () => {
  const w = await world(() => [{ project: 'app', env: trixie.name, check: ['sh', '-c', 'sleep 300 & sleep 300'], timeout: 0.5 }]);
  const t0 = Date.now();
  const r = await leapfrog(['run', ...w.args]);
  assert.equal(r.exitCode, 1, r.stderr);
  assert.match(r.stderr, /step r1\/app\/1 \(check in env trixie-py\) timed out/);
  assert.ok(Date.now() - t0 < 30_000, `took ${Date.now() - t0} ms`);
  // Nothing of the sandbox lives on: no sleep 300 and no bwrap of this run's directories.
  const ps = execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' });
  assert.ok(!ps.split('\n').some((l) => l.includes(w.dir) || l.trim() === 'sleep 300'), ps);
});
