import { performance } from 'node:perf_hooks';
import { LeapfrogError } from '../errors.js';
import { openLoadConnection, type LoadConnection } from '../database/load-connection.js';
import { takeSnapshot, type LiveSource, type Snapshot } from '../database/live-source.js';
import type { MysqlTarget } from '../database/mysql.js';
import { describeTarget } from '../database/url.js';
import { q } from './lanes.js';
import { INTEGER_KEY, keyRanges, tableCopy, type ColumnInfo } from './live-plan.js';
import { createLater } from './live-objects.js';
import type { RestoreProgress, RestoreResult } from './restore.js';
import { deferKeys } from './sql-split.js';

/**
 * `rehearse --from URL` on MySQL/MariaDB: the chain's databases copied from
 * the live server straight into the rehearsal's server, no dump file. All
 * N source connections read one consistent snapshot (live-source.ts); each
 * pairs with a connection to the copy and takes tasks from one queue, the
 * largest tables first and a big table in key ranges, so tables and parts
 * of tables load side by side. Each task is one LOAD DATA LOCAL INFILE fed
 * by a SELECT's rows as they arrive, paused when the copy falls behind, so
 * memory stays flat whatever the size. A table is created without its
 * plain secondary keys, which are added once its rows are in (as the
 * restore does); views, triggers and routines come last, as a dump has
 * them. Nothing is written on the source: its transactions are READ ONLY.
 */

export interface LiveCopyOptions {
  source: MysqlTarget;
  target: MysqlTarget;
  /** Database names on the source; those absent there are skipped. */
  databases: readonly string[];
  jobs: number;
  /** Source database name → name on the copy (the --server prefix). */
  rename?: ((db: string) => string) | undefined;
  /** Views, triggers and routines with DEFINER=CURRENT_USER (a confined account may not name another). */
  ownDefiner?: boolean | undefined;
  onProgress?: ((p: RestoreProgress) => void) | undefined;
  log?: ((text: string) => void) | undefined;
  signal?: AbortSignal | undefined;
  /** Split a table InnoDB estimates larger than this into key ranges of about this size (default 64 MiB). */
  rangeBytes?: number | undefined;
}

export interface LiveCopyResult extends RestoreResult {
  rows: number;
  /** How long writers on the source were held by the global read lock. */
  lockMs: number;
}

/** Bytes of rows per chunk handed to the copy's socket. */
const CHUNK_BYTES = 1024 * 1024;
/** A table estimated larger than this is split into key ranges of about this size. */
const RANGE_BYTES = 64 * 1024 * 1024;

interface Task {
  db: string;
  table: string;
  select: string;
  load: string;
  order: number;
}

interface TableRow {
  db: string;
  name: string;
  type: string;
  engine: string | null;
  bytes: number;
}

const inList = (names: readonly string[]) => names.map(() => '?').join(', ');

export async function copyLive(o: LiveCopyOptions): Promise<LiveCopyResult> {
  const started = performance.now();
  const rename = o.rename ?? ((d: string) => d);
  const log = o.log ?? (() => {});
  const jobs = Math.max(1, o.jobs);
  const rangeBytes = o.rangeBytes ?? RANGE_BYTES;
  const snap = await takeSnapshot(o.source, jobs);
  const dests: LoadConnection[] = [];
  let failed = false;
  try {
    const s0 = snap.sources[0]!;
    const names = [...new Set(o.databases)];
    const tables = (
      await s0.query<{ db: string; name: string; type: string; engine: string | null; bytes: number | string | null }>(
        `SELECT TABLE_SCHEMA db, TABLE_NAME name, TABLE_TYPE type, ENGINE engine, DATA_LENGTH bytes FROM information_schema.TABLES WHERE TABLE_SCHEMA IN (${inList(names)})`,
        names,
      )
    ).map((t): TableRow => ({ ...t, bytes: Number(t.bytes ?? 0) }));
    // InnoDB's snapshot covers InnoDB tables only: any other engine is read while writers are still held.
    const locked = tables.filter((t) => t.type === 'BASE TABLE' && (t.engine ?? '').toLowerCase() !== 'innodb');
    if (locked.length === 0) await snap.unlock();
    const sequences = tables.filter((t) => t.type === 'SEQUENCE');
    if (sequences.length > 0) throw new LeapfrogError('input', `--from: ${sequences.map((t) => `${t.db}.${t.name}`).join(', ')} is a SEQUENCE, which the live copy does not carry; rehearse from a dump (--dump FILE)`);
    const present = (await s0.query<{ db: string; cs: string; co: string }>(`SELECT SCHEMA_NAME db, DEFAULT_CHARACTER_SET_NAME cs, DEFAULT_COLLATION_NAME co FROM information_schema.SCHEMATA WHERE SCHEMA_NAME IN (${inList(names)})`, names)).sort((a, b) => names.indexOf(a.db) - names.indexOf(b.db));
    const columns = await s0.query<{ db: string; tbl: string; name: string; type: string; extra: string; pk: string }>(
      `SELECT TABLE_SCHEMA db, TABLE_NAME tbl, COLUMN_NAME name, DATA_TYPE type, EXTRA extra, COLUMN_KEY pk FROM information_schema.COLUMNS WHERE TABLE_SCHEMA IN (${inList(names)}) ORDER BY TABLE_SCHEMA, TABLE_NAME, ORDINAL_POSITION`,
      names,
    );
    const primary = await s0.query<{ db: string; tbl: string; name: string }>(`SELECT TABLE_SCHEMA db, TABLE_NAME tbl, COLUMN_NAME name FROM information_schema.STATISTICS WHERE INDEX_NAME = 'PRIMARY' AND TABLE_SCHEMA IN (${inList(names)})`, names);

    for (let i = 0; i < jobs; i++) dests.push(await openLoadConnection(o.target));
    const d0 = dests[0]!;
    const databases: Record<string, string[]> = {};
    for (const d of present) {
      await d0.query(`CREATE DATABASE IF NOT EXISTS ${q(rename(d.db))} CHARACTER SET ${d.cs} COLLATE ${d.co}`);
      databases[rename(d.db)] = [];
    }

    // The tables, created empty with their plain secondary keys held back.
    const keysLater = new Map<string, string[]>();
    const base = tables.filter((t) => t.type === 'BASE TABLE').sort((a, b) => b.bytes - a.bytes);
    for (const t of base) {
      const [row] = await s0.query<Record<string, string>>(`SHOW CREATE TABLE ${q(t.db)}.${q(t.name)}`);
      let ddl = row!['Create Table']!;
      const split = deferKeys(ddl);
      if (split) {
        ddl = split.sql;
        keysLater.set(`${t.db}.${t.name}`, split.clauses);
      }
      await d0.query(`USE ${q(rename(t.db))}`);
      await d0.query(ddl);
      databases[rename(t.db)]!.push(t.name);
    }

    // The tasks: one per table, or one per key range of a big table.
    const tasks: Task[] = [];
    const left = new Map<string, number>();
    for (const t of base) {
      const cols = columns.filter((c) => c.db === t.db && c.tbl === t.name);
      const copy = tableCopy(t.db, t.name, cols.map((c): ColumnInfo => ({ name: c.name, type: c.type, extra: c.extra })));
      const pk = primary.filter((p) => p.db === t.db && p.tbl === t.name);
      let wheres = [''];
      const key = pk.length === 1 ? cols.find((c) => c.name === pk[0]!.name) : undefined;
      if (t.bytes > rangeBytes && key && INTEGER_KEY.has(key.type.toLowerCase())) {
        const [r] = await s0.query<{ lo: string | null; hi: string | null }>(`SELECT CAST(MIN(${q(key.name)}) AS CHAR) lo, CAST(MAX(${q(key.name)}) AS CHAR) hi FROM ${q(t.db)}.${q(t.name)}`);
        if (r?.lo != null && r.hi != null) wheres = keyRanges(key.name, BigInt(r.lo), BigInt(r.hi), Math.ceil(t.bytes / rangeBytes));
      }
      left.set(`${t.db}.${t.name}`, wheres.length);
      wheres.forEach((w, i) => tasks.push({ db: t.db, table: t.name, select: copy.select + w, load: copy.load, order: i }));
    }
    // Tables read under the lock go first; then the largest tables' ranges, spread so one table's ranges are not all loading at once.
    const lockedKeys = new Set(locked.map((t) => `${t.db}.${t.name}`));
    const size = new Map(base.map((t) => [`${t.db}.${t.name}`, t.bytes]));
    tasks.sort((a, b) => {
      const la = lockedKeys.has(`${a.db}.${a.table}`) ? 0 : 1;
      const lb = lockedKeys.has(`${b.db}.${b.table}`) ? 0 : 1;
      return la - lb || a.order - b.order || size.get(`${b.db}.${b.table}`)! - size.get(`${a.db}.${a.table}`)!;
    });

    const loads = tasks.length;
    const total = base.reduce((n, t) => n + t.bytes, 0);
    let bytes = 0;
    let rows = 0;
    let lastReport = 0;
    const report = (done: boolean) => {
      const now = performance.now();
      if (!done && now - lastReport < 250) return;
      lastReport = now;
      const elapsedMs = now - started;
      // DATA_LENGTH is InnoDB's estimate of pages, not of text: a rough bound, never shown past 100 %.
      const shown = Math.min(bytes, total);
      const etaMs = shown > 0 && elapsedMs > 500 && !done ? (elapsedMs / shown) * (total - shown) : undefined;
      o.onProgress?.({ file: 'live copy', bytes: done ? Math.max(total, bytes) : shown, total: Math.max(total, done ? bytes : 0), elapsedMs, etaMs, done });
    };

    let failure: Error | undefined;
    const onAbort = () => {
      failure ??= new LeapfrogError('interrupted', 'interrupted while copying the live databases');
    };
    o.signal?.addEventListener('abort', onAbort, { once: true });
    let lockedLeft = tasks.filter((t) => lockedKeys.has(`${t.db}.${t.table}`)).length;
    const worker = async (src: LiveSource, dest: LoadConnection) => {
      let current: string | undefined;
      for (let task = tasks.shift(); task && !failure; task = tasks.shift()) {
        try {
          const db = rename(task.db);
          if (current !== db) {
            await dest.query(`USE ${q(db)}`);
            current = db;
          }
          let sent = 0;
          const loaded = await dest.load(task.load, (flow) =>
            src.rowStream(task!.select, {
              chunkBytes: CHUNK_BYTES,
              congested: flow.congested,
              whenClear: flow.whenClear,
              onRow: (n) => {
                sent++;
                bytes += n;
              },
            }),
          );
          rows += sent;
          report(false);
          // LOCAL turns refused values and duplicate keys into warnings: any is a failure.
          if (loaded.rows !== sent || loaded.warnings > 0) {
            throw new Error(`LOAD DATA loaded ${loaded.rows} of ${sent} rows with ${loaded.warnings} warning(s)`);
          }
          const key = `${task.db}.${task.table}`;
          const n = left.get(key)! - 1;
          left.set(key, n);
          if (n === 0 && keysLater.has(key)) await dest.query(`ALTER TABLE ${q(task.table)} ${keysLater.get(key)!.join(', ')}`);
        } catch (err) {
          failure ??= new LeapfrogError('unexpected', `live copy of ${task.db}.${task.table} from ${describeTarget(o.source)} failed: ${(err as Error).message}`, { cause: err });
        } finally {
          if (lockedKeys.has(`${task.db}.${task.table}`)) lockedLeft--;
        }
      }
    };
    const pool = dests.map((d, i) => worker(snap.sources[i]!, d));
    if (locked.length > 0) {
      // Non-transactional tables are read while writers are held (mydumper does the same), then the lock goes.
      log(`--from: ${locked.length} table(s) are not InnoDB (${locked.map((t) => `${t.db}.${t.name} ${t.engine}`).join(', ')}): writers stay held until they are copied`);
      // Polled: the locked tables are few and small (MyISAM, Aria, MEMORY in an InnoDB cloud).
      while (lockedLeft > 0 && failure === undefined && !snap.lockLost) await new Promise((r) => setTimeout(r, 20));
      if (snap.lockLost) {
        failure ??= new LeapfrogError('refused', `--from ${describeTarget(o.source)}: the tables that are not InnoDB (${locked.map((t) => `${t.db}.${t.name}`).join(', ')}) took longer to copy than writers may be held (the read lock was released after ${Math.round(snap.lockMs / 1000)} s), so their copy is not one point in time; rehearse from a dump (--dump FILE) or convert them to InnoDB`);
      }
      await snap.unlock();
    }
    await Promise.all(pool);
    o.signal?.removeEventListener('abort', onAbort);
    if (failure) throw failure;

    await createLater({ sources: snap.sources, dest: d0, databases: present.map((d) => d.db), rename, ownDefiner: o.ownDefiner ?? false });
    report(true);
    return { bytes, rows, statements: loads, durationMs: performance.now() - started, lockMs: snap.lockMs, databases: Object.fromEntries(Object.entries(databases).map(([d, t]) => [d, t.sort()])) };
  } catch (err) {
    failed = true;
    throw err;
  } finally {
    await closeAll(snap, dests, failed);
  }
}

async function closeAll(snap: Snapshot, dests: readonly LoadConnection[], abort: boolean): Promise<void> {
  await Promise.all([snap.close({ abort }), ...dests.map((d) => d.close({ abort }))]);
}
