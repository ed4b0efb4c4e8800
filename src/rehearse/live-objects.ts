import { LeapfrogError } from '../errors.js';
import type { LoadConnection } from '../database/load-connection.js';
import type { LiveSource } from '../database/live-source.js';
import { q } from './lanes.js';
import { currentUserDefiner } from './restore.js';

/**
 * A live copy's views, triggers and routines, created once the rows are in
 * (as mariadb-dump --routines --triggers orders them: a trigger created
 * before the rows would fire on every loaded row). Their text comes from
 * SHOW CREATE on the source, run with the source database as the default
 * one, so the server leaves that database's name out of the text
 * (https://mariadb.com/kb/en/show-create-view/) and a renamed copy
 * (--server's prefix) resolves names to itself. Triggers and routines run
 * under the sql_mode they were created with, as the dump sets it.
 */

export interface LaterOptions {
  sources: readonly LiveSource[];
  dest: LoadConnection;
  databases: readonly string[];
  rename: (db: string) => string;
  ownDefiner: boolean;
}

const str = (s: string) => `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
/** ER_NO_SUCH_TABLE, ER_VIEW_INVALID: a view over a view not created yet. */
const NOT_YET = /doesn't exist|references invalid table/i;

export async function createLater(o: LaterOptions): Promise<void> {
  const src = o.sources[0]!;
  const own = (sql: string) => (o.ownDefiner ? currentUserDefiner(sql) : sql);
  const ours = "NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION";
  for (const db of o.databases) {
    await src.query(`USE ${q(db)}`);
    await o.dest.query(`USE ${q(o.rename(db))}`);
    // Views: in rounds, so a view over another view waits for it.
    let views = (await src.query<{ name: string }>(`SELECT TABLE_NAME name FROM information_schema.VIEWS WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME`, [db])).map((v) => v.name);
    const text = new Map<string, string>();
    for (const v of views) {
      const [row] = await src.query<Record<string, string>>(`SHOW CREATE VIEW ${q(v)}`);
      text.set(v, row!['Create View']!);
    }
    while (views.length > 0) {
      const failed: { view: string; err: Error }[] = [];
      for (const v of views) {
        try {
          await o.dest.query(own(text.get(v)!));
        } catch (err) {
          if (!NOT_YET.test((err as Error).message)) throw new LeapfrogError('unexpected', `live copy: creating view ${db}.${v} failed: ${(err as Error).message}`, { cause: err });
          failed.push({ view: v, err: err as Error });
        }
      }
      if (failed.length === views.length) throw new LeapfrogError('unexpected', `live copy: creating view ${db}.${failed[0]!.view} failed: ${failed[0]!.err.message}`, { cause: failed[0]!.err });
      views = failed.map((f) => f.view);
    }

    const triggers = await src.query<{ name: string }>(`SELECT TRIGGER_NAME name FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ? ORDER BY EVENT_OBJECT_TABLE, ACTION_ORDER`, [db]);
    for (const t of triggers) {
      const [row] = await src.query<Record<string, string>>(`SHOW CREATE TRIGGER ${q(t.name)}`);
      await createIn(o.dest, row!['sql_mode']!, own(row!['SQL Original Statement']!), `trigger ${db}.${t.name}`, ours);
    }

    const routines = await src.query<{ name: string; type: string }>(`SELECT ROUTINE_NAME name, ROUTINE_TYPE type FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ? ORDER BY ROUTINE_TYPE, ROUTINE_NAME`, [db]);
    for (const r of routines) {
      const kind = r.type === 'FUNCTION' ? 'FUNCTION' : 'PROCEDURE';
      const [row] = await src.query<Record<string, string | null>>(`SHOW CREATE ${kind} ${q(r.name)}`);
      const body = row?.[kind === 'FUNCTION' ? 'Create Function' : 'Create Procedure'];
      if (!body) throw new LeapfrogError('refused', `--from: the ${kind.toLowerCase()} ${db}.${r.name} cannot be read by this account (SHOW CREATE ${kind} shows its text only to its definer or an account with SELECT on mysql.proc); grant that, or rehearse from a dump`);
      await createIn(o.dest, row!['sql_mode'] ?? '', own(body), `${kind.toLowerCase()} ${db}.${r.name}`, ours);
    }
  }
}

async function createIn(dest: LoadConnection, sqlMode: string, sql: string, what: string, restore: string): Promise<void> {
  await dest.query(`SET SESSION sql_mode = ${str(sqlMode)}`);
  try {
    await dest.query(sql);
  } catch (err) {
    throw new LeapfrogError('unexpected', `live copy: creating ${what} failed: ${(err as Error).message}`, { cause: err });
  } finally {
    await dest.query(`SET SESSION sql_mode = ${str(restore)}`);
  }
}
