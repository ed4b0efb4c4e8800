import { createHash } from 'node:crypto';
import mysql from 'mysql2/promise';
import { lockedError } from './lock.js';
import type { LockOptions } from './session.js';

/** GET_LOCK on its own connection, kept idle (and so its idle time tells since when) until release. */
class ServerLock {
  private constructor(private readonly conn: mysql.Connection) {}

  static async acquire(c: mysql.ConnectionOptions, names: readonly string[], what: string, opts: LockOptions): Promise<ServerLock> {
    const conn = await mysql.createConnection(c);
    const deadline = Date.now() + opts.waitSeconds * 1000;
    try {
      // The server would drop an idle connection (and the locks) after wait_timeout (8 h by default).
      await conn.query('SET SESSION wait_timeout = 31536000');
      for (const name of names) {
        const wait = Math.max(0, Math.ceil((deadline - Date.now()) / 1000));
        const [rows] = await conn.query('SELECT GET_LOCK(?, ?) AS got', [name, wait]);
        if ((rows as { got: number | null }[])[0]?.got === 1) continue;
        const [held] = await conn.query(`SELECT p.ID id, p.USER user, p.HOST host, p.TIME time FROM information_schema.PROCESSLIST p WHERE p.ID = IS_USED_LOCK(?)`, [name]);
        const h = (held as { id: number; user: string; host: string; time: number }[])[0];
        const holder = h
          ? `server connection ${h.id} (${h.user} from ${h.host}), holding lock ${name} since ${new Date(Date.now() - h.time * 1000).toISOString()}`
          : `another session holding lock ${name} (this user cannot see which: it needs the PROCESS privilege)`;
        throw lockedError(what, holder, opts.waitSeconds);
      }
      return new ServerLock(conn);
    } catch (err) {
      await conn.end().catch(() => conn.destroy());
      throw err;
    }
  }

  /**
   * Never fails: a lock whose connection is gone (the server died or killed
   * it) was released with it, as a session's named locks end with the session
   * (https://mariadb.com/kb/en/get_lock/), and a failure here must not hide
   * the error the run stopped on.
   */
  async release(): Promise<void> {
    try {
      await this.conn.query('DO RELEASE_ALL_LOCKS()');
    } catch {
      // Released with its connection.
    } finally {
      await this.conn.end().catch(() => this.conn.destroy());
    }
  }
}


export function acquireServerLock(c: mysql.ConnectionOptions, names: readonly string[], what: string, opts: LockOptions): Promise<ServerLock> {
  return ServerLock.acquire(c, names, what, opts);
}

/** The server lock names for databases: one per database (GET_LOCK names are at most 64 characters; a database name may be 64 itself). */
export function serverLockNames(databases: readonly string[]): string[] {
  return databases.map((d) => (d.length <= 52 ? `leapfrog:db:${d}` : `leapfrog:db:${createHash('sha256').update(d).digest('hex').slice(0, 52)}`));
}
