import { createHash } from 'node:crypto';
import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import Database from 'better-sqlite3';
import type { Chain } from '../chain/types.js';
import { LeapfrogError } from '../errors.js';
import type { LockOptions, TargetSession } from './session.js';
import { describePlacement } from './placement.js';
import { makeDirs } from '../dirs.js';

/**
 * Only one `run` (or `rollback`) at a time on a target (STYLE.md, "lock
 * first, then read state"). Two locks, both released by the operating
 * system or the server when the holder dies, so a killed run leaves nothing
 * stale behind:
 *
 * - a local lock in the state directory (per target), and for a SQLite
 *   target one in the target's directory: an exclusive SQLite transaction on
 *   a small lock file, i.e. a POSIX advisory lock the kernel drops with the
 *   process; beside it a JSON note says who holds it (host, pid, since);
 * - for a server target, GET_LOCK on a dedicated connection held for the
 *   whole run, one lock per database the chain touches, so two chains (or
 *   two state directories, or two machines) that share a database exclude
 *   each other. The server drops them when that connection closes, and a
 *   SIGKILLed client's socket is closed by its kernel. The server only knows the holder's connection (user, client
 *   host and port, idle time = time since it took the lock); the local note
 *   gives host and pid when the state directory is shared.
 */

export interface LockHolder {
  host: string;
  pid: number;
  since: string;
  command: string;
}

export type { LockOptions } from './session.js';

const POLL_MS = 200;

/** An exclusive lock on a file, held by an open SQLite transaction. */
export class FileLock {
  private constructor(
    private readonly db: Database.Database,
    private readonly note: string,
  ) {}

  static async acquire(file: string, what: string, opts: LockOptions): Promise<FileLock> {
    makeDirs(path.dirname(file), what);
    const note = file + '.holder';
    const deadline = Date.now() + opts.waitSeconds * 1000;
    for (;;) {
      const db = new Database(file, { timeout: 0 });
      try {
        db.exec('BEGIN EXCLUSIVE');
        const holder: LockHolder = { host: os.hostname(), pid: process.pid, since: new Date().toISOString(), command: opts.command };
        writeFileSync(note + '.tmp', JSON.stringify(holder) + '\n', { mode: 0o600 });
        renameSync(note + '.tmp', note);
        return new FileLock(db, note);
      } catch (err) {
        db.close();
        if ((err as { code?: string }).code !== 'SQLITE_BUSY') {
          throw new LeapfrogError('unexpected', `${what}: cannot take the lock ${file}: ${(err as Error).message}`, { cause: err });
        }
      }
      if (Date.now() >= deadline) throw lockedError(what, await currentHolder(note), opts.waitSeconds);
      await sleep(POLL_MS);
    }
  }

  release(): void {
    rmSync(this.note, { force: true });
    this.db.close(); // closing ends the transaction and drops the lock
  }
}

function readHolder(note: string): LockHolder | undefined {
  try {
    return JSON.parse(readFileSync(note, 'utf8')) as LockHolder;
  } catch {
    return undefined;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Who holds the lock, from its note. The holder writes the note just after
 * taking the lock, so for a moment the note may be missing, or still be a
 * killed holder's: give the new holder up to a second to write its own.
 */
async function currentHolder(note: string): Promise<string> {
  const until = Date.now() + 1000;
  for (;;) {
    const h = readHolder(note);
    const fresh = h !== undefined && (h.host !== os.hostname() || alive(h.pid));
    if (fresh) return `leapfrog ${h.command} on host ${h.host}, pid ${h.pid}, since ${h.since}`;
    if (Date.now() > until) return 'another leapfrog (it has not written who it is yet)';
    await sleep(25);
  }
}

export function lockedError(what: string, holder: string, waited: number): LeapfrogError {
  return new LeapfrogError(
    'locked',
    `${what} is locked by ${holder}${waited > 0 ? ` (waited ${waited} s)` : ''}. Only one run at a time may move these databases: wait for it, or pass --wait-lock SECONDS; if that process is gone, its lock is gone too, so run again.`,
  );
}

/**
 * Run `cb` holding the run locks for (target, chain): the state directory's,
 * then the target's own (session.lock: a lock file beside SQLite files,
 * GET_LOCK on a server). Released however `cb` ends.
 */
export async function withTargetLock<T>(session: TargetSession, chain: Chain, stateDir: string, opts: LockOptions, cb: () => Promise<T>): Promise<T> {
  const shown = describePlacement(session.placement);
  const key = createHash('sha256').update(shown).digest('hex').slice(0, 16);
  const local = await FileLock.acquire(path.join(stateDir, 'locks', `${key}.lock`), `${shown} (state directory ${stateDir})`, opts);
  try {
    // Every database of the chain, sorted, so two runs take the server locks in the same order.
    const databases = [...new Set(Object.values(chain.projects).flatMap((p) => Object.values(p.databases)))].sort();
    const remote = await session.lock(databases, shown, opts);
    try {
      return await cb();
    } finally {
      await remote.release();
    }
  } finally {
    local.release();
  }
}
