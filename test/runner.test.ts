/**
 * The runner's own rules on a tiny custom toolchain (real tarball, real
 * child processes, real SQLite files and a real MariaDB server): verified
 * syncs, parallel lanes with after: edges, timeouts, checks, and argv hygiene.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import Database from 'better-sqlite3';
import * as tar from 'tar';
import { stringify } from 'yaml';
import { CACHE, describeTargets, dropDatabases, leapfrog, MARIADB_URL, scalar, tempDir, uniquePrefix, withMariadb, type TargetKind } from './helpers.js';

type Json = Record<string, any>;
let envDir: string;

// A toolchain of small shell tools. Versions live in table ver(v) of each database.
const TOOLS: Record<string, string> = {
  // setver CONF N: move the database whose URL is CONF's first line to version N, as a sync would.
  setver: [
    'url=$(head -n 1 "$1")',
    'case "$url" in',
    '  sqlite:///*) sqlite3 "${url#sqlite:///}" "UPDATE ver SET v = $2" ;;',
    '  mysql+pymysql://*) rest=${url#mysql+pymysql://}; auth=${rest%%/*}; name=${rest#*/}; hp=${auth#*@}',
    '    mariadb --protocol=TCP -h "${hp%:*}" -P "${hp##*:}" -u "${auth%%@*}" "$name" -e "UPDATE ver SET v = $2" ;;',
    '  *) echo "setver: cannot use $url" >&2; exit 2 ;;',
    'esac',
  ].join('\n'),
  // lie: claim success without doing anything.
  lie: 'exit 0',
  // stamp FILE NAME SECONDS: record when this step ran.
  stamp: 'echo "start $2 $(date +%s%N)" >> "$1"; sleep "$3"; echo "end $2 $(date +%s%N)" >> "$1"',
  fail: 'echo "something went wrong" >&2; exit "${1:-4}"',
  sleepy: 'sleep "$1"',
};

before(async () => {
  const work = tempDir('toolchain');
  const src = path.join(work, 'src');
  mkdirSync(path.join(src, 'bin'), { recursive: true });
  for (const [name, body] of Object.entries(TOOLS)) writeFileSync(path.join(src, 'bin', name), `#!/bin/sh\nset -e\n${body}\n`, { mode: 0o755 });
  const tarball = path.join(work, 'tools.tar.gz');
  await tar.c({ gzip: true, file: tarball, cwd: src, portable: true }, ['bin']);
  envDir = path.join(work, 'envs');
  mkdirSync(envDir);
  const sha256 = createHash('sha256').update(readFileSync(tarball)).digest('hex');
  writeFileSync(path.join(envDir, 'tools.yaml'), stringify({ env: 'tools', source: { file: tarball, sha256 } }));
});

const scratch: string[] = [];
after(() => dropDatabases(scratch));

/** A chain of projects with one database each, versions in table ver(v), on the given target. */
async function world(kind: TargetKind, projects: string[], releases: Json[]) {
  const dir = tempDir('world');
  const db = path.join(dir, 'db');
  mkdirSync(db);
  const prefix = kind === 'mariadb' ? uniquePrefix() : '';
  for (const p of projects) {
    if (kind === 'sqlite') {
      const d = new Database(path.join(db, `${p}.sqlite3`));
      d.exec('CREATE TABLE ver (v INTEGER); INSERT INTO ver VALUES (1)');
      d.close();
    } else {
      scratch.push(prefix + p);
      await withMariadb((c) => c.query(`CREATE DATABASE \`${prefix}${p}\`; CREATE TABLE \`${prefix}${p}\`.ver (v INTEGER); INSERT INTO \`${prefix}${p}\`.ver VALUES (1)`));
    }
  }
  const chain = path.join(dir, 'chain.yaml');
  writeFileSync(
    chain,
    stringify({
      chain: 'tiny',
      envs: envDir,
      projects: Object.fromEntries(
        projects.map((p) => [
          p,
          { databases: { main: prefix + p }, version: { main: { kind: 'sql', query: 'SELECT v FROM ver', numeric: true } }, start: { main: 1 }, config: { 'db.conf': '{{ db.main.url }}\n' } },
        ]),
      ),
      releases: releases.map((r) => ({ env: 'tools', ...r })),
    }),
  );
  const state = path.join(dir, 'state');
  return {
    dir,
    name: (p: string) => prefix + p,
    version: async (p: string): Promise<unknown> =>
      kind === 'sqlite' ? scalar(path.join(db, `${p}.sqlite3`), 'SELECT v FROM ver') : withMariadb(async (c) => ((await c.query(`SELECT v FROM \`${prefix}${p}\`.ver`))[0] as { v: number }[])[0]!.v),
    args: ['--chain', chain, '--db', kind === 'sqlite' ? `sqlite:${db}` : MARIADB_URL, '--state-dir', state, '--cache-dir', CACHE],
    state,
  };
}

const SETVER = "{{ config['db.conf'] }}";

describeTargets('runner', (kind) => {
  test('a sync whose toolchain exits 0 without reaching its boundary stops the run', async () => {
    const w = await world(kind, ['a'], [
      { release: 'r1', steps: [{ project: 'a', sync: ['lie'], expect: { main: 2 } }] },
      { release: 'r2', steps: [{ project: 'a', sync: ['setver', SETVER, 3], expect: { main: 3 } }] },
    ]);
    const r = await leapfrog(['run', ...w.args]);
    assert.equal(r.exitCode, 1, r.stderr);
    assert.match(r.stderr, /step r1\/a\/1 \(sync in env tools\) exited 0, but main is at 1, not 2: the toolchain did not do what the chain declares/);
    assert.equal(await w.version('a'), 1, 'r2 never ran');
  });

  test('--parallel runs projects side by side, and after: holds a step until another project\'s hop is complete', async () => {
    const w = await world(kind, ['a', 'b', 'c'], [
      {
        release: 'r1',
        steps: [
          { project: 'a', data: ['stamp', '{{ project }}.log', 'a', '0.6'] },
          { project: 'a', sync: ['setver', SETVER, 2], expect: { main: 2 } },
          { project: 'b', data: ['stamp', '{{ project }}.log', 'b', '0.6'] },
          { project: 'b', sync: ['setver', SETVER, 2], expect: { main: 2 } },
          { project: 'c', data: ['stamp', '{{ project }}.log', 'c', '0.1'], after: ['a@r1'] },
          { project: 'c', sync: ['setver', SETVER, 2], expect: { main: 2 } },
        ],
      },
    ]);
    const r = await leapfrog(['run', ...w.args, '--parallel', '2', '--format', 'json']);
    assert.equal(r.exitCode, 0, r.stderr);
    const run = JSON.parse(r.stdout) as Json;
    const runDir = run.runDir as string;
    const times: Record<string, number> = {};
    for (const p of ['a', 'b', 'c']) {
      for (const line of readFileSync(path.join(runDir, 'work', `${p}.log`), 'utf8').trim().split('\n')) {
        const [what, name, ns] = line.split(' ');
        times[`${what} ${name}`] = Number(BigInt(ns!) / 1_000_000n);
      }
    }
    assert.ok(times['start b']! < times['end a']!, 'a and b overlapped');
    assert.ok(times['start c']! >= times['end a']!, 'c waited for a@r1');
    assert.deepEqual(run.versions, { a: { main: 2 }, b: { main: 2 }, c: { main: 2 } });
  });

  test('a step past its timeout is stopped and reported', async () => {
    const w = await world(kind, ['a'], [{ release: 'r1', steps: [{ project: 'a', data: ['sleepy', '30'], timeout: 0.5 }] }]);
    const t0 = Date.now();
    const r = await leapfrog(['run', ...w.args]);
    assert.equal(r.exitCode, 1, r.stderr);
    assert.match(r.stderr, /step r1\/a\/1 \(data in env tools\) timed out after 1 s/);
    assert.ok(Date.now() - t0 < 20_000);
  });

  test('a failing check stops the run with the tool\'s output', async () => {
    const w = await world(kind, ['a'], [{ release: 'r1', steps: [{ project: 'a', check: ['fail', '4'] }, { project: 'a', sync: ['setver', SETVER, 2], expect: { main: 2 } }] }]);
    const r = await leapfrog(['run', ...w.args]);
    assert.equal(r.exitCode, 1);
    assert.match(r.stderr, /step r1\/a\/1 \(check in env tools\) exited 4\n {2}log: .*\n {2}last lines:\n {4}something went wrong/);
    assert.equal(await w.version('a'), 1);
  });

  test('a command that does not exist in the env is reported as such', async () => {
    const w = await world(kind, ['a'], [{ release: 'r1', steps: [{ project: 'a', sync: ['compute-manage', 'db', 'sync'], expect: { main: 2 } }] }]);
    const r = await leapfrog(['run', ...w.args]);
    assert.equal(r.exitCode, 1);
    assert.match(r.stderr, /step r1\/a\/1 \(sync in env tools\) could not start \(.*ENOENT/);
  });

  test('a needed-when query that fails when its step is due is a chain mistake, not "nothing to do"', async () => {
    const w = await world(kind, ['a'], [{ release: 'r1', steps: [{ project: 'a', data: ['lie'], 'needed-when': 'SELECT COUNT(*) FROM no_such_table' }] }]);
    const r = await leapfrog(['run', ...w.args]);
    assert.equal(r.exitCode, 1, r.stderr);
    const why = kind === 'sqlite' ? 'no such table: no_such_table' : `Table '${w.name('a')}\\.no_such_table' doesn't exist`;
    assert.match(r.stderr, new RegExp(`step r1/a/1 \\(data in env tools\\) cannot evaluate its needed-when query on ${w.name('a')}: .*${why}\\. Fix the query in `));
  });

  test('a template that references something unknown is an input error before anything runs', async () => {
    const w = await world(kind, ['a'], [{ release: 'r1', steps: [{ project: 'a', sync: ['setver', '{{ db.nope.path }}', 2], expect: { main: 2 } }] }]);
    const r = await leapfrog(['run', ...w.args]);
    assert.equal(r.exitCode, 2);
    // Found when the chain loads (every branch of every template), named by file:line and field.
    assert.match(r.stderr, /\.yaml:\d+:\d+: releases\[0\]\.steps\[0\]\.sync\[1\]: template "\{\{ db\.nope\.path \}\}": db\.nope is not something templates can use: db offers main/);
    const runs = await leapfrog(['ledger', 'runs', '--state-dir', w.state, '--format', 'json']);
    assert.deepEqual((JSON.parse(runs.stdout) as Json).runs, []);
  });

  test('the password is not available to argv templates', async () => {
    const w = await world(kind, ['a'], [{ release: 'r1', steps: [{ project: 'a', sync: ['setver', '{{ db.main.password }}', 2], expect: { main: 2 } }] }]);
    const r = await leapfrog(['plan', ...w.args]);
    assert.equal(r.exitCode, 2);
    assert.match(r.stderr, /db\.main\.password/);
  });
});
