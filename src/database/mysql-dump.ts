import { createReadStream, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { execa } from 'execa';
import { LeapfrogError } from '../errors.js';
import { clientEnvironment } from '../sandbox/child-env.js';
import { gzipTo, type SnapshotFile } from './digest.js';
import type { MysqlTarget } from './mysql.js';
import { makeDirs } from '../dirs.js';

/**
 * MariaDB/MySQL snapshots: `mariadb-dump --single-transaction` (a
 * consistent read view of InnoDB tables without locking them), one database
 * per dump and `--databases` so the dump recreates it with its character
 * set; restored with the `mariadb` client. The password reaches both only
 * through a 0600 option file, never argv or the environment.
 */

/** A client option file (mode 0600) for the dump and restore clients; removed by dispose. */
export function clientOptionFile(t: MysqlTarget): { file: string; dispose: () => void } {
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
const clientEnv = () => clientEnvironment({ keepPath: true });

function client(names: readonly string[]): string {
  const dirs = (process.env.PATH ?? '').split(path.delimiter);
  for (const n of names) if (dirs.some((d) => d && existsSync(path.join(d, n)))) return n;
  throw new LeapfrogError('input', `neither ${names.join(' nor ')} is on PATH: install the MariaDB/MySQL client, or run with --snapshot none if you have your own backups`);
}

export async function dumpDatabase(t: MysqlTarget, name: string, dir: string, level: number): Promise<SnapshotFile> {
  makeDirs(dir, 'the dump directory');
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
      [result] = await Promise.all([gzipTo(dump.stdout, dest, level), dump]);
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

export async function restoreDump(target: MysqlTarget, snap: SnapshotFile): Promise<void> {
  const name = snap.database;
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
