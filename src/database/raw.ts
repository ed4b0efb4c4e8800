import { Readable } from 'node:stream';
import mysql from 'mysql2/promise';
import { LeapfrogError } from '../errors.js';
import { withTarget, type TargetSession } from './session.js';
import type { Target } from './url.js';

/**
 * Plain statement-at-a-time connections for loading a dump (the rehearsal's
 * restore). The connection speaks latin1 on the wire, which maps every byte
 * to one character and back: the dump's bytes, decoded as latin1, reach the
 * server unchanged, and the server reads them in the character set the
 * dump itself sets (SET NAMES), as the mariadb client would.
 */
export interface SqlConnection {
  query(sql: string): Promise<void>;
  /** Run a LOAD DATA LOCAL INFILE statement with `data`'s parts, in order, as the file's bytes: the rows it loaded and the warnings it raised. */
  loadLocal(sql: string, data: readonly Buffer[]): Promise<{ rows: number; warnings: number }>;
  close(): Promise<void>;
}

export async function openSqlConnection(t: Extract<Target, { kind: 'mysql' }>): Promise<SqlConnection> {
  let c: mysql.Connection;
  try {
    c = await mysql.createConnection({
      ...(t.socket ? { socketPath: t.socket } : { host: t.host, port: t.port }),
      user: t.user,
      password: t.password,
      charset: 'BINARY',
      // Without session tracking: mysql2 would follow the dump's SET NAMES and start encoding as UTF-8.
      flags: ['-SESSION_TRACK'],
      connectTimeout: 10_000,
      multipleStatements: false,
    });
  } catch (err) {
    throw new LeapfrogError('input', `cannot connect to ${t.socket ?? `${t.host}:${t.port}`} to restore (${(err as { code?: string }).code ?? (err as Error).message})`, { cause: err });
  }
  // What the mariadb client would set when the dump does not say.
  await c.query('SET NAMES utf8mb4');
  return {
    query: async (sql) => {
      await c.query(sql);
    },
    loadLocal: async (sql, data) => {
      const [res] = await c.query({ sql, infileStreamFactory: () => Readable.from(data) } as mysql.QueryOptions);
      const h = res as mysql.ResultSetHeader;
      return { rows: h.affectedRows, warnings: h.warningStatus };
    },
    close: () => c.end(),
  };
}

/** Rows per table of one database (tables only, not views). */
export function tableRowCounts(session: TargetSession, dbName: string): Promise<Record<string, number>> {
  return session.rowCounts(dbName);
}

/** Drop databases by name (a --server rehearsal's prefixed copies); missing ones are fine. */
export async function dropDatabases(t: Extract<Target, { kind: 'mysql' }>, names: readonly string[]): Promise<void> {
  await withTarget(t, (s) => s.drop(names), { check: false });
}
