import type { Readable } from 'node:stream';
import mysql from 'mysql2/promise';
import type { Connection as CoreConnection } from 'mysql2';
import { LeapfrogError } from '../errors.js';
import { mysqlConnection, type MysqlTarget } from './mysql.js';
import { describeTarget } from './url.js';

/**
 * A connection that loads a copy: statements, and LOAD DATA LOCAL INFILE
 * fed from a stream. mysql2 writes a LOCAL INFILE stream's chunks to the
 * socket as they come and does not wait for the socket to drain, so the
 * stream asks `congested()` and waits for `whenClear` itself: what is
 * queued for one connection stays near WRITE_QUEUE_BYTES.
 */
export interface LoadConnection {
  query(sql: string): Promise<void>;
  /** Run a LOAD DATA LOCAL INFILE statement reading `open()`'s stream: rows loaded and warnings raised. */
  load(sql: string, open: (flow: Flow) => Readable): Promise<{ rows: number; warnings: number }>;
  close(o?: { abort?: boolean }): Promise<void>;
}

export interface Flow {
  congested(): boolean;
  whenClear(resume: () => void): void;
}

const WRITE_QUEUE_BYTES = 4 * 1024 * 1024;

export async function openLoadConnection(t: MysqlTarget): Promise<LoadConnection> {
  let c: mysql.Connection;
  try {
    c = await mysql.createConnection({ ...mysqlConnection(t), charset: 'UTF8MB4_GENERAL_CI', multipleStatements: false });
  } catch (err) {
    throw new LeapfrogError('input', `cannot connect to ${describeTarget(t)} to load the copy (${(err as { code?: string }).code ?? (err as Error).message})`, { cause: err });
  }
  // mysqldump's own session for loading: AUTO_INCREMENT columns keep their 0s, no foreign key or unique
  // check per row (the rows come from a server that enforced them), UTC as on the source connections.
  // A load into an empty table takes InnoDB's bulk path, which locks the table for the load's transaction
  // (MDEV-24621): the other key ranges of that table wait for it, longer than the default 50 s on a big one.
  // A metadata lock is waited for a minute, not the server's default year: when --server is the --from
  // server, CREATE TABLE queues behind the copy's own global read lock, which must end as an error.
  await c.query("SET SESSION sql_mode = 'NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION', foreign_key_checks = 0, unique_checks = 0, time_zone = '+00:00', innodb_lock_wait_timeout = 3600, lock_wait_timeout = 60");
  const socket = (c as unknown as { connection: CoreConnection & { stream: NodeJS.WritableStream & { writableLength: number } } }).connection.stream;
  const flow: Flow = {
    congested: () => socket.writableLength > WRITE_QUEUE_BYTES,
    whenClear: (resume) => socket.once('drain', resume),
  };
  return {
    query: async (sql) => {
      await c.query(sql);
    },
    load: async (sql, open) => {
      const [res] = await c.query({ sql, infileStreamFactory: () => open(flow) } as mysql.QueryOptions);
      const h = res as mysql.ResultSetHeader;
      return { rows: h.affectedRows, warnings: h.warningStatus };
    },
    close: async (o = {}) => {
      if (o.abort) c.destroy();
      else await c.end().catch(() => c.destroy());
    },
  };
}
