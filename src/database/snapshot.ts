import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync, openSync, readSync, closeSync, fsyncSync, renameSync, rmSync, writeFileSync, mkdtempSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip, createGzip } from 'node:zlib';
import Database from 'better-sqlite3';
import { execa } from 'execa';
import { LeapfrogError } from '../errors.js';
import type { TargetSession } from './session.js';
import { sqliteFile, type Target } from './url.js';

/**
 * Snapshots of one database, compressed (gzip, streamed) into a file whose
 * sha256 goes into the ledger, and their restore.
 *
 * - MariaDB/MySQL: `mariadb-dump --single-transaction` (a consistent read
 *   view of InnoDB tables without locking them), one database per dump and
 *   `--databases` so the dump recreates it with its character set.
 * - SQLite: the file's bytes, copied while a read transaction holds SQLite's
 *   SHARED lock so no writer can commit meanwhile. The online backup API
 *   (better-sqlite3's `backup()`) is used for WAL databases, where the file
 *   alone is not the database; for the usual rollback-journal files a byte
 *   copy is preferred because the backup API rewrites header counters, and a
 *   rollback should give back the very bytes the operator had.
 *
 * The password reaches the dump and restore clients only through a 0600
 * option file, never argv or the environment.
 */

export interface SnapshotFile {
  database: string;
  /** null: the database did not exist when the snapshot was taken; a rollback drops it. */
  file: string | null;
  sha256: string | null;
  bytes: number | null;
}

/** Hash and count what passes through. */
function hasher(): Transform & { digest(): { sha256: string; bytes: number } } {
  const h = createHash('sha256');
  let bytes = 0;
  const t = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      h.update(chunk);
      bytes += chunk.length;
      cb(null, chunk);
    },
  }) as Transform & { digest(): { sha256: string; bytes: number } };
  t.digest = () => ({ sha256: h.digest('hex'), bytes });
  return t;
}

async function gzipTo(source: Readable, dest: string, level: number): Promise<{ sha256: string; bytes: number }> {
  const tmp = dest + '.part';
  const h = hasher();
  try {
    await pipeline(source, createGzip({ level }), h, createWriteStream(tmp, { mode: 0o600 }));
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
  durableRename(tmp, dest);
  return h.digest();
}

/** A client option file (mode 0600) for the dump and restore clients; removed by dispose. */
export function clientOptionFile(t: Extract<Target, { kind: 'mysql' }>): { file: string; dispose: () => void } {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'leapfrog-client-'));
  const file = path.join(dir, 'client.cnf');
  const q = (s: string) => `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
  const lines = ['[client]', `user=${q(t.user)}`];
  if (t.password !== undefined) lines.push(`password=${q(t.password)}`);
  if (t.socket) lines.push(`socket=${q(t.socket)}`);
  else lines.push(`host=${q(t.host)}`, `port=${t.port}`, 'protocol=TCP');
  writeFileSync(file, lines.join('\n') + '\n', { mode: 0o600 });
  return { file, dispose: () => rmSync(dir, { recursive: true, force: true }) };
}

/** The clients get PATH and the locale, not leapfrog's environment (which may hold LEAPFROG_DB_PASSWORD). */
function clientEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const k of ['PATH', 'LANG', 'LC_ALL', 'LC_CTYPE', 'TZ']) if (process.env[k] !== undefined) env[k] = process.env[k]!;
  return env;
}

function client(names: readonly string[]): string {
  const dirs = (process.env.PATH ?? '').split(path.delimiter);
  for (const n of names) if (dirs.some((d) => d && existsSync(path.join(d, n)))) return n;
  throw new LeapfrogError('input', `neither ${names.join(' nor ')} is on PATH: install the MariaDB/MySQL client, or run with --snapshot none if you have your own backups`);
}

export interface SnapshotOptions {
  /** gzip level, 1 (fastest) to 9. */
  level: number;
}

/** Take one database's snapshot into `dir`. A failure names the database and what to do; the run has not started any step yet. */
export async function snapshotDatabase(session: TargetSession, name: string, dir: string, opts: SnapshotOptions): Promise<SnapshotFile> {
  try {
    return await takeSnapshot(session, name, dir, opts);
  } catch (err) {
    if (err instanceof LeapfrogError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    throw new LeapfrogError(
      'unexpected',
      `snapshot of database ${name} into ${dir} failed: ${(err as Error).message}${code === 'ENOSPC' ? ' (free space in the state directory, or run with --snapshot none if you have your own backup)' : ''}`,
      { cause: err },
    );
  }
}

async function takeSnapshot(session: TargetSession, name: string, dir: string, opts: SnapshotOptions): Promise<SnapshotFile> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  if (!(await session.exists(name))) return { database: name, file: null, sha256: null, bytes: null };
  const t = session.target;
  if (t.kind === 'sqlite') {
    const src = sqliteFile(t.dir, name);
    const dest = path.join(dir, `${name}.sqlite3.gz`);
    const db = new Database(src, { readonly: true, fileMustExist: true });
    try {
      if (isWal(src)) {
        const copy = path.join(dir, `${name}.sqlite3.backup`);
        await db.backup(copy);
        try {
          return { database: name, file: dest, ...(await gzipTo(createReadStream(copy), dest, opts.level)) };
        } finally {
          rmSync(copy, { force: true });
        }
      }
      db.exec('BEGIN');
      db.prepare('SELECT COUNT(*) FROM sqlite_master').get(); // takes the SHARED lock, held until COMMIT
      try {
        return { database: name, file: dest, ...(await gzipTo(createReadStream(src), dest, opts.level)) };
      } finally {
        db.exec('COMMIT');
      }
    } finally {
      db.close();
    }
  }
  const dest = path.join(dir, `${name}.sql.gz`);
  const opt = clientOptionFile(t);
  try {
    const dump = execa(
      client(['mariadb-dump', 'mysqldump']),
      [`--defaults-extra-file=${opt.file}`, '--single-transaction', '--quick', '--routines', '--triggers', '--hex-blob', '--no-tablespaces', '--databases', name],
      { buffer: { stdout: false, stderr: true }, stdin: 'ignore', env: clientEnv(), extendEnv: false },
    );
    let result: { sha256: string; bytes: number };
    try {
      [result] = await Promise.all([gzipTo(dump.stdout, dest, opts.level), dump]);
    } catch (err) {
      const stderr = String((err as { stderr?: unknown }).stderr ?? '').trim();
      if (!stderr) throw err;
      throw new LeapfrogError('unexpected', `snapshot of database ${name} failed: mariadb-dump says: ${stderr}`, { cause: err });
    }
    return { database: name, file: dest, ...result };
  } finally {
    opt.dispose();
  }
}

function isWal(file: string): boolean {
  const fd = openSync(file, 'r');
  try {
    const b = Buffer.alloc(2);
    readSync(fd, b, 0, 2, 18); // file format write/read versions: 2 means WAL
    return b[0] === 2;
  } finally {
    closeSync(fd);
  }
}

/** sha256 of a snapshot file as it is on disk now. */
export async function fileSha256(file: string): Promise<string> {
  const h = createHash('sha256');
  await pipeline(createReadStream(file), h);
  return h.digest('hex');
}

/** Put one database back as its snapshot has it (dropping it when it did not exist). Call with the session's connections released. */
export async function restoreDatabase(target: Target, snap: SnapshotFile): Promise<void> {
  const name = snap.database;
  if (target.kind === 'sqlite') {
    const dest = sqliteFile(target.dir, name);
    // A journal or WAL left beside the file belongs to the old content and would be applied to the new one.
    for (const extra of ['-journal', '-wal', '-shm']) rmSync(dest + extra, { force: true });
    if (snap.file === null) {
      rmSync(dest, { force: true });
      return;
    }
    const tmp = path.join(target.dir, `.${name}.sqlite3.restoring`);
    await pipeline(createReadStream(snap.file), createGunzip(), createWriteStream(tmp, { mode: 0o644 }));
    durableRename(tmp, dest);
    return;
  }
  const opt = clientOptionFile(target);
  try {
    const mysql = client(['mariadb', 'mysql']);
    const run = (args: string[], input?: Readable) =>
      execa(mysql, [`--defaults-extra-file=${opt.file}`, '--batch', ...args], { ...(input ? { input } : { stdin: 'ignore' as const }), env: clientEnv(), extendEnv: false });
    try {
      await run(['-e', `DROP DATABASE IF EXISTS \`${name.replace(/`/g, '``')}\``]);
      if (snap.file !== null) await run([], createReadStream(snap.file).pipe(createGunzip()));
    } catch (err) {
      const stderr = String((err as { stderr?: unknown }).stderr ?? '').trim();
      throw new LeapfrogError('unexpected', `restoring database ${name} from ${snap.file ?? '(absent)'} failed: ${stderr || (err as Error).message}; the database may be half restored: run the rollback again`, { cause: err });
    }
  } finally {
    opt.dispose();
  }
}

/** Put a finished file in place only once its bytes are on disk: a crash leaves the old file or the new, never half of one. */
function durableRename(tmp: string, dest: string): void {
  const fd = openSync(tmp, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, dest);
}
