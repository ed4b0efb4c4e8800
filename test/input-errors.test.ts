/**
 * Bad input, tried as an attacker would: each case exits 2 with one clear
 * line naming what is wrong (never 255 with a stack, never a hang), and
 * nothing is created where it should not be.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { describe, test } from 'node:test';
import { execa } from 'execa';
import { CHAIN, ROOT, tempDir } from './helpers.js';

/** The CLI, killed after 30 s so that a hang fails the test instead of stalling it. */
async function cli(args: readonly string[]): Promise<{ exitCode: number; stderr: string; timedOut: boolean }> {
  const r = await execa(process.execPath, [path.join(ROOT, 'bin', 'leapfrog.js'), ...args], { reject: false, cwd: ROOT, stdin: 'ignore', timeout: 30_000, killSignal: 'SIGKILL' });
  return { exitCode: r.exitCode ?? -1, stderr: String(r.stderr), timedOut: r.timedOut };
}

function refused(r: { exitCode: number; stderr: string; timedOut: boolean }, message: RegExp): void {
  assert.equal(r.timedOut, false, 'it hung');
  assert.equal(r.exitCode, 2, r.stderr);
  assert.match(r.stderr, message);
  assert.doesNotMatch(r.stderr, /\n\s+at |unexpected error/, 'no stack');
  assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
}

describe('input errors exit 2 with one line', () => {
  const dir = tempDir('input-errors');
  const db = path.join(dir, 'db');
  mkdirSync(db);
  const aFile = path.join(dir, 'a-file');
  writeFileSync(aFile, 'not a directory\n');

  test('a state directory that cannot be one: a file, under a file, under /proc, a dangling symlink, read-only', async () => {
    const dangling = path.join(dir, 'dangling');
    symlinkSync(path.join(dir, 'nowhere', 'x'), dangling);
    const cases: [string, RegExp][] = [
      [aFile, /--state-dir: cannot create the directory \S*a-file\S*: \S*a-file is a file, not a directory; choose another directory/],
      [path.join(aFile, 'sub', 'x'), /--state-dir: cannot create the directory \S*a-file\/sub\/x\S*: \S*a-file is a file, not a directory/],
      // Node's own recursive mkdir spins forever here.
      ['/proc/self/leapfrog-state', /--state-dir: cannot create the directory \/proc\/self\/leapfrog-state\S*: \/proc\/self cannot hold directories/],
      [dangling, /--state-dir: cannot create the directory \S*dangling\S*: \S*dangling is in the way: something that is not a directory \(a dangling symlink\?\)/],
      ['/sys/leapfrog-state', /--state-dir: cannot create the directory \/sys\/leapfrog-state\S*: \/sys (does not allow creating directories here|is on a read-only file system|is not writable)/],
    ];
    for (const [stateDir, message] of cases) {
      for (const command of ['run', 'rehearse']) {
        const args = command === 'run' ? ['run', '--chain', CHAIN, '--db', `sqlite:${db}`, '--state-dir', stateDir] : ['rehearse', '--chain', CHAIN, '--dump', path.join(db, 'x.sqlite3'), '--state-dir', stateDir];
        refused(await cli(args), message);
      }
    }
    assert.deepEqual(readdirSync(db), [], 'nothing created in the target');
    assert.equal(existsSync(path.join(dir, 'nowhere')), false, 'nothing created through the dangling symlink');
  });

  test('--db: malformed NAME=URL, a bad % escape (the password never shown), sqlite: naming a file', async () => {
    const cases: [string[], RegExp][] = [
      [['--db', 'main='], /--db main=: NAME=URL needs the URL of server main after "="/],
      [['--db', '=mysql://root@h'], /--db =mysql:\/\/root@h: NAME=URL needs a server name/],
      [['--db', 'a b=sqlite:x', '--db', `sqlite:${db}`], /--db a b=sqlite:x: NAME=URL needs a server name/],
      // A server name that is not one: the URL after "=" still has its password hidden.
      [['--db', 'cell 1=mysql://admin:s3cret@db-cell1:3306', '--db', `sqlite:${db}`], /--db cell 1=mysql:\/\/admin:\*\*\*\*@db-cell1:3306: NAME=URL needs a server name/],
      [['--db', '=mysql://admin:s3cret@db-cell1', '--db', `sqlite:${db}`], /--db =mysql:\/\/admin:\*\*\*\*@db-cell1: NAME=URL needs a server name/],
      [['--db', `x=sqlite:${db}`, '--db', `x=sqlite:${db}`, '--db', `sqlite:${db}`], /--db x=…: server x is given twice/],
      [['--db', 'mysql://admin:s3cr%zzet@db.example:3306'], /--db mysql:\/\/admin:\*\*\*\*@db\.example:3306: the password has a "%" that is not followed by two hex digits; in a URL write % as %25/],
      [['--db', 'mysql://adm%in@db.example'], /the user has a "%" that is not followed by two hex digits/],
      [['--db', `sqlite:${aFile}`], /--db sqlite:.*a-file: .*a-file is a file, not a directory; sqlite:DIR names the directory/],
    ];
    for (const [flags, message] of cases) {
      for (const command of ['plan', 'run']) {
        const r = await cli([command, '--chain', CHAIN, ...flags, '--state-dir', path.join(dir, 'state')]);
        refused(r, message);
        assert.doesNotMatch(r.stderr, /s3cr/, 'the password is not shown');
      }
    }
    assert.equal(existsSync(path.join(dir, 'state')), false, 'no state directory made for a refused command line');
  });

  test('chain files that are not chains: a directory, binary garbage, a FIFO, /dev/zero, a huge file, a YAML alias bomb', async () => {
    const garbage = path.join(dir, 'garbage.yaml');
    writeFileSync(garbage, randomBytes(64 * 1024));
    const fifo = path.join(dir, 'fifo.yaml');
    await execa('mkfifo', [fifo]);
    const huge = path.join(dir, 'huge.yaml');
    writeFileSync(huge, 'chain: huge\nprojects: {}\nreleases:\n' + '  - { release: r, steps: [] }\n'.repeat(80_000));
    // "Billion laughs": each level repeats the one before nine times; expanded, 9^9 strings.
    const laughs = path.join(dir, 'laughs.yaml');
    const levels = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'];
    for (let i = 1; i < 9; i++) {
      const prev = String.fromCharCode(96 + i);
      const name = String.fromCharCode(97 + i);
      levels.push(`${name}: &${name} [${Array(9).fill(`*${prev}`).join(',')}]`);
    }
    writeFileSync(laughs, levels.join('\n') + '\n');
    const cases: [string, RegExp][] = [
      [dir, /: is a directory; give the chain itself \(a file\)/],
      [garbage, /garbage\.yaml: is binary, not YAML or JSON \(a NUL byte at offset \d+\)/],
      [fifo, /fifo\.yaml: is not a regular file \(a device, FIFO or socket\)/],
      ['/dev/zero', /dev\/zero: is not a regular file/],
      [huge, /huge\.yaml: is \d+\.\d MiB; a chain is a few KB \(over 1 MiB is refused\)/],
      [laughs, /laughs\.yaml: its YAML aliases \(\*name\) expand too far/],
    ];
    for (const [chain, message] of cases) {
      for (const command of ['plan', 'check-migrations', 'run']) {
        const r = await cli([command, '--chain', chain, '--db', `sqlite:${db}`, '--state-dir', path.join(dir, 'state')]);
        if (command === 'check-migrations') {
          // Its report goes to stdout; the exit code is the input error's.
          assert.equal(r.exitCode, 2, `${chain}: ${r.stderr}`);
          assert.equal(r.timedOut, false);
        } else refused(r, message);
      }
    }
    const manyProblems = path.join(dir, 'many.yaml');
    writeFileSync(manyProblems, 'chain: many\nprojects: {}\nreleases:\n' + '  - { release: r, steps: [] }\n'.repeat(2000));
    const r = await cli(['plan', '--chain', manyProblems, '--db', `sqlite:${db}`]);
    assert.equal(r.exitCode, 2);
    assert.match(r.stderr, /many\.yaml: 2001 problems in this chain/);
    assert.match(r.stderr, /… and 1951 more\n?$/);
    assert.ok(r.stderr.split('\n').length < 60, 'the first problems, not two thousand lines');
  });

  test('--defaults-file that is not an option file', async () => {
    refused(await cli(['plan', '--chain', CHAIN, '--db', 'mysql://root@127.0.0.1', '--defaults-file', '/dev/zero']), /--defaults-file \/dev\/zero: is not a regular file/);
    refused(await cli(['plan', '--chain', CHAIN, '--db', 'mysql://root@127.0.0.1', '--defaults-file', dir]), /--defaults-file .*: is a directory; give the option file itself \(a file\)/);
  });
});
