import { accessSync, constants, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa, type ResultPromise } from 'execa';
import { LeapfrogError } from '../errors.js';
import { withTarget } from '../database/session.js';
import { describeTarget, type Target } from '../database/url.js';
import { makeDirs } from '../dirs.js';

/**
 * A throwaway MariaDB/MySQL server for a rehearsal (an I/O edge: it spawns
 * mariadbd). Its datadir lives in the state directory; it listens on a free
 * loopback port and a private socket; and it runs with settings only a
 * server whose data may be lost can use: no binary log, no doublewrite
 * buffer, redo log flushed once a second instead of at every commit
 * (innodb_flush_log_at_trx_commit=0), a buffer pool sized from free memory.
 * `withScratchServer` stops it and removes its files however the callback
 * ends, unless asked to keep it.
 */

export interface ScratchServerOptions {
  /** The server binary; default mariadbd (else mysqld) on PATH or in the usual sbin directories. */
  mysqld?: string | undefined;
  /** Directory under which the server's own directory is made. */
  parentDir: string;
  /** Leave the server running and its files in place (for inspection). */
  keep?: boolean | undefined;
  log?: ((line: string) => void) | undefined;
  /** Give up waiting for the server after this long. */
  startTimeoutMs?: number | undefined;
  /** Bytes about to be loaded (the dumps' size), which sizes the redo log (redoLogSize). */
  dataBytes?: number | undefined;
}

export interface ScratchServer {
  target: Extract<Target, { kind: 'mysql' }>;
  /** The server's directory: data/, error.log, tmp/. */
  dir: string;
  datadir: string;
  socket: string;
  port: number;
  pid: number;
  bufferPoolBytes: number;
  redoLogBytes: number;
  binary: string;
}

/** Where server binaries live when sbin is not on PATH (a non-root shell on Debian). */
const SBIN = ['/usr/local/sbin', '/usr/sbin', '/usr/local/bin', '/usr/bin', '/sbin'];
const MIB = 1024 * 1024;

export function findExecutable(names: readonly string[], extraDirs: readonly string[] = SBIN): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(':').filter(Boolean), ...extraDirs];
  for (const name of names) {
    for (const d of dirs) {
      const p = path.join(d, name);
      try {
        accessSync(p, constants.X_OK);
        return p;
      } catch {
        // not here
      }
    }
  }
  return undefined;
}

/** A free loopback port: bind port 0, read what the kernel chose, release it. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

/** A quarter of free memory, at least 128 MiB, at most 4 GiB, in whole 128 MiB chunks. */
export function bufferPoolSize(freeBytes: number): number {
  const chunk = 128 * MIB;
  const want = Math.min(4096 * MIB, Math.max(chunk, freeBytes / 4));
  return Math.floor(want / chunk) * chunk;
}

/**
 * The redo log for loading `dataBytes`: twice that, in 256 MiB steps, from 256 MiB to 4 GiB. A load
 * writes redo for its rows and again for the secondary keys built after them; a log smaller than that
 * fills again and again, and each time the server must flush dirty pages before it may go on (a
 * checkpoint). Restoring 1.1 GB on 2 cores with a 2 GiB log instead of 256 MiB: the server's CPU
 * 60 s -> 47.5 s, the wall time 52 s -> 46 s (BENCHMARKS.md, restore). The file is allocated whole,
 * so a small rehearsal keeps a small one.
 */
export function redoLogSize(dataBytes: number | undefined): number {
  const step = 256 * MIB;
  return Math.min(16 * step, Math.max(step, Math.ceil((2 * (dataBytes ?? 0)) / step) * step));
}

/** The server's arguments: everything explicit, nothing read from my.cnf (--no-defaults must come first). */
/**
 * The settings that trade durability for speed: a crash can lose or corrupt the data, which a throwaway
 * copy may afford and a production server may not. Timings taken with them are optimistic.
 * (https://mariadb.com/kb/en/innodb-system-variables/#innodb_flush_log_at_trx_commit)
 */
export const THROWAWAY_SETTINGS: readonly { arg: string; says: string }[] = [
  { arg: '--skip-log-bin', says: 'no binary log' },
  { arg: '--innodb-doublewrite=0', says: 'no doublewrite buffer' },
  { arg: '--innodb-flush-log-at-trx-commit=0', says: 'innodb_flush_log_at_trx_commit=0 (redo log flushed once a second, not at every commit)' },
];

export function serverArgs(s: { datadir: string; dir: string; socket: string; port: number; bufferPoolBytes: number; redoLogBytes: number; asRoot: boolean }): string[] {
  return [
    '--no-defaults',
    `--datadir=${s.datadir}`,
    `--socket=${s.socket}`,
    `--port=${s.port}`,
    '--bind-address=127.0.0.1',
    `--pid-file=${path.join(s.dir, 'mysqld.pid')}`,
    `--log-error=${path.join(s.dir, 'error.log')}`,
    `--tmpdir=${path.join(s.dir, 'tmp')}`,
    ...(s.asRoot ? ['--user=root'] : []),
    '--skip-name-resolve',
    ...THROWAWAY_SETTINGS.map((x) => x.arg),
    '--skip-external-locking',
    '--performance-schema=OFF',
    `--innodb-buffer-pool-size=${s.bufferPoolBytes}`,
    `--innodb-log-file-size=${s.redoLogBytes}`,
    '--max-allowed-packet=1G',
    '--character-set-server=utf8mb4',
  ];
}

export async function startScratchServer(o: ScratchServerOptions): Promise<ScratchServer> {
  const log = o.log ?? (() => {});
  const binary = o.mysqld ?? findExecutable(['mariadbd', 'mysqld']);
  if (!binary) {
    throw new LeapfrogError('input', 'no mariadbd or mysqld found on PATH (nor in /usr/sbin, /usr/local/sbin) to start a scratch server; install mariadb-server, pass --mysqld PATH, or rehearse on an existing server with --server URL');
  }
  try {
    accessSync(binary, constants.X_OK);
  } catch {
    throw new LeapfrogError('input', `--mysqld ${binary}: not an executable file`);
  }
  makeDirs(o.parentDir, '--state-dir');
  const dir = mkdtempSync(path.join(o.parentDir, 'scratch-'));
  // A Unix socket path is limited to ~107 bytes; the state dir may be deep, so the socket sits in a short temporary directory.
  const sockDir = mkdtempSync(path.join(os.tmpdir(), 'lf-sock-'));
  const socket = path.join(sockDir, 'mysqld.sock');
  const datadir = path.join(dir, 'data');
  makeDirs(path.join(dir, 'tmp'), '--state-dir');
  const asRoot = process.getuid?.() === 0;
  const removeFiles = () => {
    rmSync(dir, { recursive: true, force: true });
    rmSync(sockDir, { recursive: true, force: true });
  };

  const installDb = findExecutable(['mariadb-install-db', 'mysql_install_db'], [path.dirname(binary), ...SBIN]);
  try {
    if (!installDb) throw new LeapfrogError('input', `no mariadb-install-db next to ${binary} or on PATH to initialise a scratch datadir; install mariadb-server, or use --server URL`);
    log(`scratch server: initialising ${datadir}`);
    const init = await execa(
      installDb,
      ['--no-defaults', `--datadir=${datadir}`, '--auth-root-authentication-method=normal', '--skip-test-db', '--skip-name-resolve', ...(asRoot ? ['--user=root'] : [])],
      { reject: false, all: true, stdin: 'ignore' },
    );
    if (init.exitCode !== 0) {
      throw new LeapfrogError('unexpected', `scratch server: ${path.basename(installDb)} failed (exit ${init.exitCode})`, { details: String(init.all ?? '').split('\n').slice(-15) });
    }
  } catch (err) {
    removeFiles();
    throw err;
  }

  const bufferPoolBytes = bufferPoolSize(os.freemem());
  const port = await freePort();
  const redoLogBytes = redoLogSize(o.dataBytes);
  const args = serverArgs({ datadir, dir, socket, port, bufferPoolBytes, redoLogBytes, asRoot });
  log(`scratch server: starting ${binary} on 127.0.0.1:${port} (buffer pool ${Math.round(bufferPoolBytes / MIB)} MiB, redo log ${Math.round(redoLogBytes / MIB)} MiB)`);
  // Its own process group: a Ctrl-C at the terminal reaches leapfrog, which stops the server after the run has stopped.
  const child = execa(binary, args, { detached: true, cleanup: false, stdin: 'ignore', stdout: 'ignore', stderr: 'ignore', reject: false });
  const pid = child.pid;
  if (pid === undefined) {
    removeFiles();
    throw new LeapfrogError('unexpected', `scratch server: could not start ${binary}`);
  }
  const server: ScratchServer = {
    target: { kind: 'mysql', host: '127.0.0.1', port, user: 'root', password: undefined, socket: undefined },
    dir,
    datadir,
    socket,
    port,
    pid,
    bufferPoolBytes,
    redoLogBytes,
    binary,
  };
  running.set(pid, { child, server });
  let exited = false;
  void child.then(() => (exited = true));
  const deadline = Date.now() + (o.startTimeoutMs ?? 60_000);
  for (;;) {
    if (exited) {
      const tail = errorLogTail(dir);
      running.delete(pid);
      removeFiles();
      throw new LeapfrogError('unexpected', `scratch server: ${binary} exited while starting`, { details: tail });
    }
    try {
      // The handshake first (a refused connect is normal while InnoDB starts), then a real query.
      if (await greets(port)) {
        await withTarget(server.target, (s) => s.exists('mysql'));
        break;
      }
      throw new Error('not yet');
    } catch {
      if (Date.now() > deadline) {
        const tail = errorLogTail(dir);
        await stopScratchServer(server, { keep: false });
        throw new LeapfrogError('unexpected', `scratch server: not accepting connections on 127.0.0.1:${port} after ${Math.round((o.startTimeoutMs ?? 60_000) / 1000)} s`, { details: tail });
      }
      await sleep(100);
    }
  }
  log(`scratch server: ready at ${describeTarget(server.target)} (pid ${pid})`);
  return server;
}

/** Whether something on the port sends a greeting (the MySQL protocol's server handshake) within a second. */
function greets(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    const done = (ok: boolean) => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(1000, () => done(false));
    sock.once('data', () => done(true));
    sock.once('error', () => done(false));
  });
}

function errorLogTail(dir: string): string[] {
  try {
    return readFileSync(path.join(dir, 'error.log'), 'utf8').trimEnd().split('\n').slice(-15);
  } catch {
    return [];
  }
}

const running = new Map<number, { child: ResultPromise; server: ScratchServer }>();

// Last resort if leapfrog exits without reaching a finally (process.exit elsewhere, an uncaught error):
// a throwaway server must not outlive the rehearsal. Its files are left; the next start makes a new directory.
process.once('exit', () => {
  for (const pid of running.keys()) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
});

/** Stop the server (SIGTERM: a clean shutdown, SIGKILL after 30 s) and remove its files, unless `keep`. */
export async function stopScratchServer(s: ScratchServer, o: { keep: boolean }): Promise<void> {
  const entry = running.get(s.pid);
  if (o.keep) {
    running.delete(s.pid);
    entry?.child.unref();
    return;
  }
  if (entry) {
    try {
      process.kill(s.pid, 'SIGTERM');
    } catch {
      // already gone
    }
    const done = entry.child.then(() => true);
    const inTime = await Promise.race([done, sleep(30_000, undefined, { ref: false }).then(() => false)]);
    if (!inTime) {
      try {
        process.kill(s.pid, 'SIGKILL');
      } catch {
        // gone meanwhile
      }
      await done;
    }
    running.delete(s.pid);
  }
  rmSync(s.dir, { recursive: true, force: true });
  rmSync(path.dirname(s.socket), { recursive: true, force: true });
}

/** Run `cb` with a scratch server; stop it and remove its files however `cb` ends (unless `keep`). */
export async function withScratchServer<T>(o: ScratchServerOptions, cb: (s: ScratchServer) => Promise<T>): Promise<T> {
  const s = await startScratchServer(o);
  const log = o.log ?? (() => {});
  try {
    return await cb(s);
  } finally {
    if (o.keep) log(`scratch server: kept running at ${describeTarget(s.target)} (pid ${s.pid}, datadir ${s.datadir}); stop it with kill ${s.pid}`);
    else log('scratch server: stopping and removing its files');
    await stopScratchServer(s, { keep: o.keep ?? false });
    if (!o.keep) log('scratch server: gone');
  }
}
