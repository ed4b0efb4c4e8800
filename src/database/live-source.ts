import { Readable } from 'node:stream';
import { performance } from 'node:perf_hooks';
import mysql from 'mysql2/promise';
import type { Connection as CoreConnection } from 'mysql2';
import { LeapfrogError } from '../errors.js';
import { mysqlConnection, type MysqlTarget } from './mysql.js';
import { describeTarget } from './url.js';

/**
 * Reading a live server for a copy, from one point in time over several
 * connections, as mydumper does (mydumper/src/mydumper_start_dump.c):
 * FLUSH TABLES WITH READ LOCK on the first connection, which waits for the
 * writes in flight and blocks new commits; then on every connection START
 * TRANSACTION WITH CONSISTENT SNAPSHOT, which opens InnoDB's read view at
 * once (not at the first read, as a plain START TRANSACTION would); then
 * UNLOCK TABLES. Writers were held for the time those statements take, and
 * every connection reads the same committed state ever after. Each
 * transaction is READ ONLY, so the server itself refuses any write on these
 * connections (ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION), and it is only
 * ever rolled back.
 */

export interface LiveSource {
  /** A read inside the snapshot (information_schema, SHOW CREATE …). */
  query<T = Record<string, unknown>>(sql: string, params?: readonly unknown[]): Promise<T[]>;
  /**
   * A SELECT whose single column is one already formatted row: the rows as a
   * stream of newline-terminated chunks of about `chunkBytes`, paused while
   * `congested()` says the consumer is behind. `onRow` counts them.
   */
  rowStream(sql: string, o: { chunkBytes: number; congested: () => boolean; whenClear: (resume: () => void) => void; onRow: (bytes: number) => void }): Readable;
  close(): Promise<void>;
}

export interface Snapshot {
  sources: LiveSource[];
  /** How long the global read lock held writers. */
  lockMs: number;
  /** The read lock was dropped at LOCK_MAX_SECONDS, before unlock(): tables read under it after that are not one point in time. */
  lockLost: boolean;
  /** Release the read lock now (after the tables that are not transactional are copied). */
  unlock(): Promise<void>;
  /** Roll back and disconnect; `abort` drops the connections at once (a copy that failed mid-stream). */
  close(o?: { abort?: boolean }): Promise<void>;
}

/** Why a snapshot could not be taken because of the account's privileges (RELOAD for the read lock). */
export class SnapshotPrivilege extends LeapfrogError {}

/** ER_SPECIFIC_ACCESS_DENIED_ERROR (1227) and ER_DBACCESS_DENIED_ERROR (1044): what FTWRL raises without RELOAD. */
const DENIED = new Set([1227, 1044, 1045]);
/** ER_LOCK_WAIT_TIMEOUT: FTWRL waited behind a long query or a table lock. */
const LOCK_TIMEOUT = 1205;

/**
 * How long FLUSH TABLES WITH READ LOCK may wait. It queues behind running
 * statements and, while it waits, every writer queues behind it
 * (mydumper's --long-query-guard exists for this): better to give up and
 * say so than to stall a live cloud.
 */
const LOCK_WAIT_SECONDS = 10;

/**
 * The longest writers are ever held once the lock is taken: the snapshots and
 * the copy of tables that are not transactional (MyISAM, Aria: few and small in
 * an InnoDB cloud). Past it the lock's connection is dropped, which releases it.
 */
const LOCK_MAX_SECONDS = 60;

async function connect(t: MysqlTarget): Promise<mysql.Connection> {
  try {
    const c = await mysql.createConnection({ ...mysqlConnection(t), charset: 'UTF8MB4_GENERAL_CI', multipleStatements: false });
    // UTC so TIMESTAMP values read the same here as they are loaded on the copy; no SQL mode that changes
    // how SHOW CREATE prints (ANSI_QUOTES); a slow consumer must not make the server drop the result.
    await c.query("SET SESSION time_zone = '+00:00', sql_mode = '', net_write_timeout = 3600, wait_timeout = 86400");
    return c;
  } catch (err) {
    throw new LeapfrogError('input', `--from ${describeTarget(t)}: cannot connect (${(err as { code?: string }).code ?? (err as Error).message})`, { cause: err });
  }
}

export async function takeSnapshot(t: MysqlTarget, connections: number): Promise<Snapshot> {
  // The lock has a connection of its own that no copy reads on: mysql2 runs one command at a time per
  // connection, so UNLOCK TABLES on a connection busy streaming a table would wait for that table's end,
  // and forever if its stream stalled, holding every writer of the live server meanwhile.
  const conns: mysql.Connection[] = [];
  let lockConn: mysql.Connection | undefined;
  const closeAll = () => Promise.all([...conns, ...(lockConn ? [lockConn] : [])].map((c) => c.end().catch(() => c.destroy())));
  let locked = false;
  let lost = false;
  let started = 0;
  let lockMs = 0;
  let cap: NodeJS.Timeout | undefined;
  try {
    for (let i = 0; i < Math.max(1, connections); i++) conns.push(await connect(t));
    lockConn = await connect(t);
    await lockConn.query(`SET SESSION lock_wait_timeout = ${LOCK_WAIT_SECONDS}`);
    started = performance.now();
    try {
      await lockConn.query('FLUSH TABLES WITH READ LOCK');
    } catch (err) {
      const e = err as { errno?: number; sqlMessage?: string };
      if (e.errno !== undefined && DENIED.has(e.errno)) {
        throw new SnapshotPrivilege(
          'refused',
          `--from ${describeTarget(t)}: this account may not take the brief global read lock that makes the copy one point in time (FLUSH TABLES WITH READ LOCK needs the RELOAD privilege: ${e.sqlMessage ?? ''})`,
          { cause: err },
        );
      }
      if (e.errno === LOCK_TIMEOUT) {
        throw new LeapfrogError('refused', `--from ${describeTarget(t)}: FLUSH TABLES WITH READ LOCK waited ${LOCK_WAIT_SECONDS} s behind a long query or a table lock and gave up (writers were held only while it waited); try again when the server is quieter`, { cause: err });
      }
      throw err;
    }
    locked = true;
    // Whatever happens to this process's event loop after this, writers are held at most LOCK_MAX_SECONDS:
    // the server releases a global read lock when its connection goes.
    const held = lockConn;
    cap = setTimeout(() => {
      if (!locked) return;
      locked = false;
      lost = true;
      lockMs = performance.now() - started;
      held.destroy();
    }, LOCK_MAX_SECONDS * 1000);
    cap.unref();
    for (const c of conns) {
      await c.query('SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ');
      await c.query('START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY');
    }
  } catch (err) {
    clearTimeout(cap);
    if (locked) lockConn?.destroy();
    await closeAll();
    throw err;
  }
  lockMs = performance.now() - started;
  const unlock = async () => {
    if (!locked) return;
    locked = false;
    clearTimeout(cap);
    await lockConn!.query('UNLOCK TABLES');
    lockMs = performance.now() - started;
  };
  return {
    sources: conns.map(source),
    get lockMs() {
      return lockMs;
    },
    get lockLost() {
      return lost;
    },
    unlock,
    close: async (o = {}) => {
      if (o.abort) {
        // A connection paused in the middle of a result cannot run ROLLBACK: the server rolls back what it drops,
        // and releases the read lock with the lock's connection.
        clearTimeout(cap);
        locked = false;
        lockConn!.destroy();
        for (const c of conns) c.destroy();
        return;
      }
      await unlock().catch(() => {});
      await Promise.all(conns.map((c) => c.query('ROLLBACK').catch(() => {})));
      await closeAll();
    },
  };
}

function source(c: mysql.Connection): LiveSource {
  const core = (c as unknown as { connection: CoreConnection }).connection;
  return {
    query: async <T>(sql: string, params: readonly unknown[] = []) => {
      const [rows] = await c.query(sql, params as unknown[]);
      return rows as T[];
    },
    rowStream(sql, o) {
      const NL = Buffer.from('\n');
      let parts: Buffer[] = [];
      let size = 0;
      let paused = false;
      let started = false;
      let ended = false;
      const pause = () => {
        if (paused || ended) return;
        paused = true;
        core.pause();
      };
      const resume = () => {
        if (!paused || ended) return;
        paused = false;
        core.resume();
      };
      const out = new Readable({
        highWaterMark: 2,
        objectMode: false,
        read() {
          if (!started) {
            started = true;
            // typeCast false: each value is the raw bytes the server sent, no decoding into JS strings.
            const q = core.query({ sql, rowsAsArray: true, typeCast: false } as never);
            q.on('result', (row: unknown) => {
              const v = (row as (Buffer | null)[])[0];
              if (v === null || v === undefined) {
                // CONCAT_WS returns NULL (with a warning) when the row is longer than max_allowed_packet.
                out.destroy(new Error('a row longer than the source server\'s max_allowed_packet (its formatted row came back NULL); raise max_allowed_packet there'));
                return;
              }
              parts.push(v, NL);
              size += v.length + 1;
              o.onRow(v.length + 1);
              if (size >= o.chunkBytes) flush();
            });
            q.on('error', (err: Error) => out.destroy(err));
            q.on('end', () => {
              ended = true;
              // The connection serves the next task: never leave it paused.
              if (paused) {
                paused = false;
                core.resume();
              }
              flush();
              out.push(null);
            });
            return;
          }
          resume();
        },
      });
      const flush = () => {
        if (size === 0) return;
        const chunk = Buffer.concat(parts, size);
        parts = [];
        size = 0;
        const room = out.push(chunk);
        if (!room) pause();
        else if (o.congested()) {
          pause();
          o.whenClear(resume);
        }
      };
      return out;
    },
    close: () => c.end(),
  };
}

/**
 * Whether this account holds RELOAD globally, which FLUSH TABLES WITH READ
 * LOCK needs (https://mariadb.com/kb/en/flush/). Read from
 * information_schema.USER_PRIVILEGES, which lists the account's own global
 * grants; a privilege held only through a role is not seen there, and the
 * lock itself then decides (takeSnapshot refuses with SnapshotPrivilege).
 */
export async function hasReloadPrivilege(t: MysqlTarget): Promise<boolean> {
  const c = await connect(t);
  try {
    const [rows] = await c.query(
      `SELECT COUNT(*) n FROM information_schema.USER_PRIVILEGES
       WHERE PRIVILEGE_TYPE = 'RELOAD' AND GRANTEE = CONCAT("'", SUBSTRING_INDEX(CURRENT_USER(), '@', 1), "'@'", SUBSTRING_INDEX(CURRENT_USER(), '@', -1), "'")`,
    );
    return Number((rows as { n: number | string }[])[0]?.n ?? 0) > 0;
  } finally {
    await c.end().catch(() => c.destroy());
  }
}
