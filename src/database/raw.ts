import { Readable } from 'node:stream';
import mysql from 'mysql2/promise';
import { LeapfrogError } from '../errors.js';
import type { TargetSession } from './session.js';
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
  /** Run a LOAD DATA LOCAL INFILE statement with `data` as the file's bytes: the rows it loaded and the warnings it raised. */
  loadLocal(sql: string, data: Buffer): Promise<{ rows: number; warnings: number }>;
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
      const [res] = await c.query({ sql, infileStreamFactory: () => Readable.from([data]) } as mysql.QueryOptions);
      const h = res as mysql.ResultSetHeader;
      return { rows: h.affectedRows, warnings: h.warningStatus };
    },
    close: () => c.end(),
  };
}

/** Rows per table of one database (tables only, not views). */
export async function tableRowCounts(session: TargetSession, dbName: string): Promise<Record<string, number>> {
  if (!(await session.exists(dbName))) return {};
  const k = session.db(dbName);
  let tables: string[];
  if (session.target.kind === 'sqlite') {
    tables = ((await k.raw("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")) as { name: string }[]).map((r) => r.name);
  } else {
    const [rows] = (await k.raw("SELECT TABLE_NAME t FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME", [dbName])) as [{ t: string }[]];
    tables = rows.map((r) => r.t);
  }
  const out: Record<string, number> = {};
  for (const t of tables) {
    const q = session.target.kind === 'sqlite' ? `"${t.replace(/"/g, '""')}"` : `\`${t.replace(/`/g, '``')}\``;
    const res: unknown = await k.raw(`SELECT COUNT(*) AS n FROM ${q}`);
    const rows = (Array.isArray(res) && Array.isArray(res[0]) ? res[0] : res) as { n: number | string }[];
    out[t] = Number(rows[0]!.n);
  }
  return out;
}

/** Drop databases by name (a --server rehearsal's prefixed copies); missing ones are fine. */
export async function dropDatabases(t: Extract<Target, { kind: 'mysql' }>, names: readonly string[]): Promise<void> {
  if (names.length === 0) return;
  const c = await openSqlConnection(t);
  try {
    for (const n of names) await c.query(`DROP DATABASE IF EXISTS \`${n.replace(/`/g, '``')}\``);
  } finally {
    await c.close();
  }
}
