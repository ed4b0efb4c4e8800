/**
 * A real Python toolchain in an env: modules byte-compiled by `python3 -m
 * compileall` and packed by GNU tar, as a venv or a root filesystem ships
 * them. A .pyc is used only while its source keeps the mtime (and size)
 * recorded in the .pyc's header (PEP 552, "timestamp-based"); had the
 * extractor not restored mtimes, the first step to import the code would
 * rewrite __pycache__ inside the content-addressed cache, and `envs verify`
 * would report the env as tampered with.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, utimesSync, writeFileSync, chmodSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import Database from 'better-sqlite3';
import { execa } from 'execa';
import { stringify } from 'yaml';
import { leapfrog, tempDir } from './helpers.js';
import { sha256 } from './security/harness.js';

/** The python3 a step finds: the sandbox's PATH after the env's own directories (src/sandbox). */
const PYTHON = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'].map((d) => path.join(d, 'python3')).find((p) => existsSync(p));

const MIGRATE = `"""A migration tool in miniature: moves a sqlalchemy-migrate repository to version 2."""
import sqlite3
import sys


def main(argv):
    db = sqlite3.connect(argv[1])
    with db:
        db.execute("CREATE TABLE IF NOT EXISTS widgets (id INTEGER PRIMARY KEY, name TEXT)")
        db.execute("UPDATE migrate_version SET version = 2 WHERE repository_id = 'toolkit'")
    print("toolkit.migrate from", __spec__.cached)
    return 0
`;

test('a Python env with shipped .pyc files runs a step and still verifies clean', { skip: PYTHON ? false : 'no python3 on the sandbox PATH' }, async () => {
  const dir = tempDir('pyenv');
  const src = path.join(dir, 'src');
  mkdirSync(path.join(src, 'lib', 'toolkit'), { recursive: true });
  mkdirSync(path.join(src, 'bin'));
  writeFileSync(path.join(src, 'lib', 'toolkit', '__init__.py'), '__version__ = "1.0"\n');
  writeFileSync(path.join(src, 'lib', 'toolkit', 'migrate.py'), MIGRATE);
  writeFileSync(path.join(src, 'bin', 'toolkit-manage'), '#!/bin/sh\nexec python3 -c \'import sys, toolkit.migrate; sys.exit(toolkit.migrate.main(sys.argv))\' "$@"\n');
  chmodSync(path.join(src, 'bin', 'toolkit-manage'), 0o755);
  // Sources older than the build, as in any released package.
  const built = new Date('2020-05-01T12:00:00Z');
  for (const f of ['__init__.py', 'migrate.py']) utimesSync(path.join(src, 'lib', 'toolkit', f), built, built);
  await execa(PYTHON!, ['-m', 'compileall', '-q', 'lib'], { cwd: src });
  const tarball = path.join(dir, 'toolkit.tar.gz');
  await execa('tar', ['-czf', tarball, '-C', src, 'bin', 'lib']);

  mkdirSync(path.join(dir, 'envs'));
  writeFileSync(path.join(dir, 'envs', 'toolkit.yaml'), stringify({ env: 'toolkit', source: { file: tarball, sha256: sha256(tarball) }, path: ['bin'], vars: { PYTHONPATH: '{{ root }}/lib' } }));
  mkdirSync(path.join(dir, 'chains'));
  const chain = path.join(dir, 'chains', 'toolkit.yaml');
  writeFileSync(chain, stringify({
    chain: 'toolkit',
    projects: { toolkit: { databases: { main: 'toolkit' }, version: { main: 'sqlalchemy-migrate' }, start: { main: 1 } } },
    releases: [{ release: 'two', env: 'toolkit', steps: [{ project: 'toolkit', sync: ['toolkit-manage', '{{ db.main.path }}'], expect: { main: 2 } }] }],
  }));
  const dbDir = path.join(dir, 'db');
  mkdirSync(dbDir);
  const db = new Database(path.join(dbDir, 'toolkit.sqlite3'));
  db.exec("CREATE TABLE migrate_version (repository_id VARCHAR(250) NOT NULL PRIMARY KEY, repository_path TEXT, version INTEGER); INSERT INTO migrate_version VALUES ('toolkit', 'toolkit/migrate_repo', 1);");
  db.close();
  const cache = path.join(dir, 'cache');
  const args = ['--chain', chain, '--db', `sqlite:${dbDir}`, '--state-dir', path.join(dir, 'state'), '--cache-dir', cache];

  const run = await leapfrog(['run', ...args, '--format', 'json']);
  assert.equal(run.exitCode, 0, run.stderr);
  const check = new Database(path.join(dbDir, 'toolkit.sqlite3'), { readonly: true });
  assert.equal((check.prepare('SELECT version FROM migrate_version').get() as { version: number }).version, 2);
  check.close();
  const steps = (JSON.parse(run.stdout) as { steps: { log: string }[] }).steps;
  assert.match(readFileSync(steps[0]!.log, 'utf8'), /toolkit\.migrate from \S+\/lib\/toolkit\/__pycache__\/migrate\.cpython-\d+\.pyc/);

  const verify = await leapfrog(['envs', 'verify', '--cache-dir', cache]);
  assert.equal(verify.exitCode, 0, verify.stdout + verify.stderr);
  assert.match(verify.stdout, /^ok {2}[0-9a-f]{12} toolkit$/m);

  // The control: the same import after a source's mtime changed (what an
  // extractor that does not restore mtimes leaves) rewrites the .pyc, and
  // verify sees it.
  const root = path.join(cache, sha256(tarball));
  utimesSync(path.join(root, 'lib', 'toolkit', 'migrate.py'), new Date(), new Date());
  await execa(PYTHON!, ['-c', 'import toolkit.migrate'], { env: { PYTHONPATH: path.join(root, 'lib') }, extendEnv: false });
  const stale = await leapfrog(['envs', 'verify', '--cache-dir', cache]);
  assert.equal(stale.exitCode, 3, stale.stdout + stale.stderr);
  assert.match(stale.stdout, /lib\/toolkit\/__pycache__\/migrate\.cpython-\d+\.pyc: content changed/);
});
