/**
 * npm test [-- FILE.test.js … --node-test-flag=value …]
 *
 * The test suite from a fresh checkout, in one command:
 * 1. what the tests need from Debian is checked; when something is missing
 *    and we may install it (root, apt-get), it is installed, as
 *    `playwright install --with-deps` does; otherwise the one command that
 *    installs it is printed and nothing runs;
 * 2. the fake cloud's env tarballs are built (fixtures/build-envs.ts);
 * 3. one throwaway mariadbd is started for the run: the scratch server
 *    rehearsals use (src/rehearse/scratch-server.ts), with its own datadir
 *    in a temporary directory, its own socket and a free loopback port; its
 *    URL and socket are exported as LEAPFROG_TEST_MARIADB and
 *    LEAPFROG_TEST_MARIADB_SOCKET for test/helpers.ts, with
 *    LEAPFROG_REQUIRE_MARIADB=1 so a MariaDB suite fails rather than skips;
 * 4. `node --test` runs the files (all of dist/test/ by default, or those
 *    named), two at a time;
 * 5. the server is stopped and its files removed, however the tests end,
 *    Ctrl-C included.
 *
 * LEAPFROG_TEST_MARIADB set beforehand means "use this server": none is
 * started. The machine's own MariaDB service, if any, is never used.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { findExecutable, withScratchServer } from '../src/rehearse/scratch-server.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const say = (line: string) => process.stderr.write(`npm test: ${line}\n`);

/** A Debian package the tests need, and how to tell it is there. Keep .ci/run installing nothing else. */
interface Need {
  pkg: string;
  why: string;
  present: () => boolean;
}
const onPath = (...names: string[]) => names.every((n) => findExecutable([n], []) !== undefined);
export const NEEDS: readonly Need[] = [
  { pkg: 'sqlite3', why: "the fake cloud's toolchains drive the sqlite3 client", present: () => onPath('sqlite3') },
  { pkg: 'mariadb-client', why: 'the toolchains drive the mariadb client; snapshots dump with mariadb-dump', present: () => onPath('mariadb', 'mariadb-dump') },
  {
    pkg: 'mariadb-server',
    why: "this run's own server and every rehearsal's scratch server (mariadbd, mariadb-install-db)",
    present: () => findExecutable(['mariadbd']) !== undefined && findExecutable(['mariadb-install-db']) !== undefined,
  },
  // playwright-core drives the system's Chromium (test/rehearse.test.ts names /usr/bin/chromium).
  { pkg: 'chromium', why: 'the HTML rehearsal report is checked in headless Chromium', present: () => existsSync('/usr/bin/chromium') },
  { pkg: 'mmdebstrap', why: 'root-filesystem envs are built from the Debian archive', present: () => onPath('mmdebstrap') },
  { pkg: 'bubblewrap', why: 'steps of root-filesystem envs run under bwrap', present: () => onPath('bwrap') },
  { pkg: 'uidmap', why: 'mmdebstrap builds as an unprivileged user with newuidmap', present: () => findExecutable(['newuidmap']) !== undefined },
  { pkg: 'debian-archive-keyring', why: "mmdebstrap checks the archive's signatures", present: () => existsSync('/usr/share/keyrings/debian-archive-keyring.gpg') },
  { pkg: 'zstd', why: 'envs build compresses with zstd; .tar.zst envs are decompressed by it', present: () => onPath('zstd') },
  { pkg: 'procps', why: 'a test checks with ps that no sandboxed process outlives its timeout', present: () => onPath('ps') },
  { pkg: 'tmux', why: 'the progress test drives `leapfrog run` in a real terminal', present: () => onPath('tmux') },
];

/** Install what is missing when we may (root with apt-get); else say the one command. False: the tests cannot run. */
function ensureDebianPackages(strict: boolean): boolean {
  const missing = NEEDS.filter((n) => !n.present());
  if (missing.length === 0) return true;
  const pkgs = missing.map((n) => n.pkg);
  for (const n of missing) say(`missing ${n.pkg}: ${n.why}`);
  const aptGet = findExecutable(['apt-get']);
  const command = `apt-get update && apt-get install -y ${pkgs.join(' ')}`;
  if (process.getuid?.() === 0 && aptGet && process.env.LEAPFROG_TEST_INSTALL !== '0') {
    say(`installing ${pkgs.join(' ')} (as root, with apt-get; LEAPFROG_TEST_INSTALL=0 to only name them)`);
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    const ok = spawnSync(aptGet, ['update', '-qq'], { stdio: 'inherit', env }).status === 0 && spawnSync(aptGet, ['install', '-y', '-qq', ...pkgs], { stdio: 'inherit', env }).status === 0;
    const still = NEEDS.filter((n) => !n.present()).map((n) => n.pkg);
    if (ok && still.length === 0) return true;
    say(`apt-get did not install ${still.join(' ') || pkgs.join(' ')}; install by hand: ${command}`);
    return !strict;
  }
  const how = !aptGet ? `(on Debian, as root) ${command}` : process.getuid?.() === 0 ? command : `sudo sh -c '${command}'`;
  say(`${strict ? 'cannot run the tests' : 'the tests that need them will fail'}; install with: ${how}`);
  return !strict;
}

/** The test files: those named, else every dist/test/*.test.js and dist/test/security/*.test.js. */
function testFiles(named: readonly string[]): string[] {
  if (named.length > 0) return [...named];
  return ['dist/test', 'dist/test/security'].flatMap((d) =>
    readdirSync(path.join(ROOT, d))
      .filter((f) => f.endsWith('.test.js'))
      .sort()
      .map((f) => `${d}/${f}`),
  );
}

const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
let stopping: NodeJS.Signals | undefined;
let child: ReturnType<typeof spawn> | undefined;

/** node --test with the server's environment; resolves with its exit code (128 + signal when it was stopped by one). */
function runTests(args: readonly string[], env: NodeJS.ProcessEnv): Promise<number> {
  return new Promise((resolve) => {
    child = spawn(process.execPath, ['--test', '--test-concurrency=2', ...args], { cwd: ROOT, env, stdio: 'inherit' });
    child.on('exit', (code, signal) => resolve(code ?? 128 + (signal ? os.constants.signals[signal] : 0)));
    child.on('error', (err) => {
      say(`could not start node --test: ${err.message}`);
      resolve(1);
    });
  });
}

async function main(argv: readonly string[]): Promise<number> {
  const named = argv.filter((a) => !a.startsWith('-'));
  const flags = argv.filter((a) => a.startsWith('-'));
  for (const sig of SIGNALS) {
    process.on(sig, () => {
      if (stopping) return;
      stopping = sig;
      say(`${sig}: stopping the tests, then the test server`);
      // A Ctrl-C at the terminal reached node --test too; a kill aimed at this process alone did not.
      child?.kill(sig);
      setTimeout(() => child?.kill('SIGKILL'), 15_000).unref();
    });
  }
  if (!ensureDebianPackages(named.length === 0)) return 1;
  if (spawnSync(process.execPath, [path.join(ROOT, 'dist/fixtures/build-envs.js'), '--quiet'], { cwd: ROOT, stdio: 'inherit' }).status !== 0) return 1;
  const files = testFiles(named);
  const base = { ...process.env, LEAPFROG_REQUIRE_MARIADB: process.env.LEAPFROG_REQUIRE_MARIADB ?? '1' };

  if (process.env.LEAPFROG_TEST_MARIADB) {
    say(`MariaDB tests use LEAPFROG_TEST_MARIADB=${process.env.LEAPFROG_TEST_MARIADB.replace(/:[^:@/]*@/, ':****@')}; no server started`);
    return runTests([...flags, ...files], base);
  }
  const parentDir = mkdtempSync(path.join(os.tmpdir(), 'leapfrog-test-mariadb-'));
  try {
    return await withScratchServer({ parentDir, log: say }, async (server) => {
      if (stopping) return 128 + os.constants.signals[stopping];
      const url = `mysql://root@127.0.0.1:${server.port}`;
      return runTests([...flags, ...files], { ...base, LEAPFROG_TEST_MARIADB: url, LEAPFROG_TEST_MARIADB_SOCKET: server.socket });
    });
  } finally {
    rmSync(parentDir, { recursive: true, force: true });
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = stopping ? 128 + os.constants.signals[stopping] : code;
  },
  (err: unknown) => {
    say(err instanceof Error ? `${err.message}${'details' in err && Array.isArray(err.details) ? `\n  ${err.details.join('\n  ')}` : ''}` : String(err));
    process.exitCode = 1;
  },
);
