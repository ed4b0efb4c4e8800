import { existsSync, readFileSync, renameSync, statSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { LeapfrogError } from '../errors.js';
import { migrate } from './migrations.js';
import { makeDirs } from '../dirs.js';

/**
 * Opening the ledger, to write (a run, a rollback) or only to read (plan,
 * check-migrations, ledger show: never created, never written).
 */

export const ledgerFile = (stateDir: string) => path.join(path.resolve(stateDir), 'ledger.sqlite3');

/** Device and inode of `file`, "" when it is gone. */
export function fileIdentity(file: string): string {
  try {
    const st = statSync(file);
    return `${st.dev}:${st.ino}`;
  } catch {
    return '';
  }
}

/**
 * A write-ahead log whose database is gone (the ledger deleted under a run,
 * which kept writing to it) must not meet a new ledger of the same name:
 * SQLite would replay its frames into the new file. Renamed aside, kept.
 */
function setAsideOrphanedLog(file: string): void {
  if (existsSync(file)) return;
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  for (const suffix of ['-wal', '-shm']) {
    if (existsSync(file + suffix)) renameSync(file + suffix, `${file}${suffix}.orphaned-${stamp}`);
  }
}

/** The ledger to write: created if missing, WAL with synchronous=FULL, migrated forward. */
export function openWritable(stateDir: string): { file: string; db: Database.Database } {
  const file = ledgerFile(stateDir);
  let db: Database.Database;
  makeDirs(path.dirname(file), '--state-dir');
  setAsideOrphanedLog(file);
  try {
    db = new Database(file);
  } catch (err) {
    throw new LeapfrogError('input', `${file}: cannot open the ledger (${(err as Error).message}); check --state-dir`, { cause: err });
  }
  try {
    // busy_timeout first: switching to WAL and migrating take locks that
    // another leapfrog opening the same ledger may hold for a moment.
    db.pragma('busy_timeout = 5000');
    // SQLite may refuse a journal-mode switch with SQLITE_BUSY at once, without
    // calling the busy handler, while another connection opens the same file
    // (it would otherwise risk a deadlock): retry within the same 5 s.
    const deadline = Date.now() + 5000;
    for (;;) {
      try {
        db.pragma('journal_mode = WAL');
        break;
      } catch (err) {
        if ((err as { code?: string }).code !== 'SQLITE_BUSY' || Date.now() > deadline) throw err;
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
      }
    }
    db.pragma('synchronous = FULL');
    db.pragma('foreign_keys = ON');
    migrate(db, file);
  } catch (err) {
    db.close();
    if (err instanceof LeapfrogError) throw err;
    throw new LeapfrogError('input', `${file}: cannot use this file as the ledger (${(err as Error).message}); move it away or use another --state-dir`, { cause: err });
  }
  return { file, db };
}

/**
 * The ledger for reading only, or undefined when there is none. What is read
 * is a copy in memory, so nothing on disk changes: a cleanly closed ledger's
 * main file (its header's read/write versions, bytes 18-19, set from 2 = WAL
 * to 1: https://www.sqlite.org/fileformat2.html#file_format_version_numbers;
 * an in-memory database cannot use WAL), or, when a -wal file has content (a
 * run in progress, or one that crashed before its checkpoint), the database
 * as a read-only connection in place sees it, frames included. A ledger of
 * an older schema is brought forward in that copy only.
 */
export function openReadable(stateDir: string): { file: string; db: Database.Database } | undefined {
  const file = ledgerFile(stateDir);
  if (!existsSync(file)) return undefined;
  let db: Database.Database;
  try {
    let bytes: Buffer;
    if (existsSync(file + '-wal') && statSync(file + '-wal').size > 0) {
      const live = new Database(file, { readonly: true, fileMustExist: true });
      try {
        live.pragma('busy_timeout = 5000');
        bytes = live.serialize();
      } finally {
        live.close();
      }
    } else {
      bytes = readFileSync(file);
    }
    if (bytes.length >= 20) {
      bytes[18] = 1;
      bytes[19] = 1;
    }
    db = new Database(bytes);
  } catch (err) {
    throw new LeapfrogError('input', `${file}: cannot read the ledger (${(err as Error).message})`, { cause: err });
  }
  try {
    migrate(db, file);
  } catch (err) {
    db.close();
    if (err instanceof LeapfrogError) throw err;
    throw new LeapfrogError('input', `${file}: not a ledger (${(err as Error).message})`, { cause: err });
  }
  return { file, db };
}
