import { LeapfrogError } from '../errors.js';
import { openSqlConnection, type SqlConnection } from '../database/raw.js';
import type { Target } from '../database/url.js';
import { insertHead, insertRowsInto, rowsRoom } from './insert-rows.js';

/**
 * The restore's N connections ("lanes"), each with its own queue: what
 * runs where, per-table ordering (a table's statements queued and not yet
 * run, and who waits for them), the cap on bytes queued in total, and the
 * first failure, after which nothing more runs. restore.ts decides what
 * each statement means and where it may go; this module runs it.
 */

export interface Item {
  /** The statement as text; or, for an INSERT, `raw`, decoded only if it must run as written. */
  sql?: string | undefined;
  raw?: Buffer | undefined;
  /** An INSERT that may be loaded as LOAD DATA, in this character set (the dump's SET NAMES). */
  load?: string | undefined;
  /** Its rows for LOAD DATA, made when it is queued (Lanes.prepare); then `raw` keeps only its head, for messages. */
  rows?: { data: Buffer; count: number; table: string; columns: string | undefined } | undefined;
  db: string | undefined;
  table: string | undefined;
  bytes: number;
  /** A statement that runs long for its bytes (a deferred key build: a sort of the whole table). */
  long?: boolean | undefined;
  /** A session statement, queued on every connection (`toEach`): it concerns its own connection only. */
  each?: boolean | undefined;
}

/**
 * What `quiet()` does not wait for: a key build, which touches only its table, and a session
 * statement, which touches only its own connection, where everything later runs after it.
 */
const aside = (item: Item) => item.long === true || item.each === true;

const text = (item: Item) => item.sql ?? item.raw?.toString('latin1') ?? '';

class Lane {
  queue: Item[] = [];
  /** Bytes queued or running here. */
  queued = 0;
  /** Of the statements queued (not running): how many are long, and how many are set aside (counted, not looked for: a queue may hold a million small statements). */
  private queuedLong = 0;
  private queuedAside = 0;
  db: string | undefined;
  busy = false;
  /** The statement running now (the first of a batch); undefined between batches. */
  current: Item | undefined;
  constructor(readonly conn: SqlConnection) {}

  push(item: Item): void {
    this.queue.push(item);
    this.queued += item.bytes;
    if (item.long) this.queuedLong++;
    if (aside(item)) this.queuedAside++;
  }

  shift(): Item {
    const item = this.queue.shift()!;
    if (item.long) this.queuedLong--;
    if (aside(item)) this.queuedAside--;
    return item;
  }

  /** A long statement is queued or running here: `queued` does not show how long it takes. */
  get long(): boolean {
    return this.queuedLong > 0 || this.current?.long === true;
  }

  /** Running nothing or a statement set aside, and nothing else queued. */
  get quiet(): boolean {
    return (this.current === undefined || aside(this.current)) && this.queuedAside === this.queue.length;
  }
}

/** Rows sent in one LOAD DATA. */
const LOAD_BYTES = 4 * 1024 * 1024;
/** The reused rows buffer: a load's worth of INSERTs at their worst (every byte escaped); mariadb-dump's are ~1 MB each. */
const SCRATCH_BYTES = rowsRoom(LOAD_BYTES);

export const q = (name: string) => '`' + name.replace(/`/g, '``') + '`';

export class Lanes {
  failure: Error | undefined;
  private queuedTotal = 0;
  private wakeReader: (() => void) | undefined;
  private readonly idleWaiters: (() => void)[] = [];
  private readonly quietWaiters: (() => void)[] = [];
  /** Per table: statements queued and not yet run, what to queue once they have (`after`), and who waits for them. */
  private readonly pending = new Map<string, { n: number; after: Item[]; waiters: (() => void)[] }>();
  /** Where an INSERT's rows are written before they are copied out at their size (a bigger statement gets a buffer of its own, not kept). */
  private scratch: Buffer | undefined;

  private constructor(
    private readonly lanes: Lane[],
    private readonly cap: number,
  ) {}

  static async open(target: Extract<Target, { kind: 'mysql' }>, jobs: number, cap: number): Promise<Lanes> {
    const lanes: Lane[] = [];
    try {
      for (let i = 0; i < Math.max(1, jobs); i++) {
        const conn = await openSqlConnection(target);
        lanes.push(new Lane(conn));
        // Whatever the dump's header says (mariadb-dump writes the same two, but --compact writes none):
        // tables load side by side, so a child table's rows may arrive before its parent's, and a dump's
        // rows are known unique. Session variables: the confined rehearsal account may set them. With both
        // off, InnoDB loads into an empty table in bulk (MDEV-24818), which is why restore.ts sends a
        // table's first rows alone.
        await conn.query('SET SESSION unique_checks = 0, foreign_key_checks = 0');
      }
    } catch (err) {
      await Promise.all(lanes.map((l) => l.conn.close().catch(() => {})));
      throw err;
    }
    return new Lanes(lanes, cap);
  }

  /** On the first connection (statements that run alone). */
  toFirst(item: Item): void {
    this.enqueue(this.lanes[0]!, item);
  }

  /**
   * On the connection with the least queued, passing over those with a long statement queued or
   * running: a key build weighs 0 bytes, and the next table's key build or rows queued behind the
   * biggest table's sort would wait for it (the last 13 s of the bench's restore) with a core idle.
   */
  toLeastLoaded(item: Item): void {
    this.enqueue(this.lanes.reduce((a, b) => ((a.long && !b.long) || (a.long === b.long && b.queued < a.queued) ? b : a)), item);
  }

  /** On every connection (session statements). */
  toEach(item: Item): void {
    for (const l of this.lanes) this.enqueue(l, { ...item, each: true });
  }

  get full(): boolean {
    return this.queuedTotal >= this.cap;
  }

  /** Everything queued has run (or something failed). */
  idle(): Promise<void> {
    return new Promise<void>((resolve) => (this.allIdle() || this.failure ? resolve() : this.idleWaiters.push(resolve)));
  }

  /**
   * Everything queued has run but long statements (key builds) and the session statements queued
   * behind them: what touches no table of theirs (a CREATE DATABASE, the next dump file) need not
   * wait for a sort of another table. Then `toLeastLoaded` finds a connection with nothing to do
   * (unless there is only one).
   */
  quiet(): Promise<void> {
    return new Promise<void>((resolve) => (this.allQuiet() || this.failure ? resolve() : this.quietWaiters.push(resolve)));
  }

  /** A table's queued statements have run, and whatever `afterTable` queued behind them. */
  tableDone(key: string): Promise<void> {
    return new Promise<void>((resolve) => {
      const p = this.pending.get(key);
      if (!p || p.n === 0 || this.failure) resolve();
      else p.waiters.push(resolve);
    });
  }

  /** Queue `item` (about the table `key`) on the least loaded connection once the table's queued statements have run; now if none are queued. */
  afterTable(key: string, item: Item): void {
    const p = this.pending.get(key);
    if (!p || p.n === 0) this.toLeastLoaded(item);
    else p.after.push(item);
  }

  /** There is room under the cap again. */
  room(): Promise<void> {
    return new Promise<void>((resolve) => (this.queuedTotal < this.cap || this.failure ? resolve() : (this.wakeReader = resolve)));
  }

  async close(): Promise<void> {
    await this.idle().catch(() => {});
    await Promise.all(this.lanes.map((l) => l.conn.close().catch(() => {})));
  }

  private allIdle(): boolean {
    return this.lanes.every((l) => !l.busy && l.queue.length === 0);
  }

  private allQuiet(): boolean {
    return this.lanes.every((l) => l.quiet);
  }

  /**
   * An INSERT's rows are made as it is queued, by whoever queues it (the dump's reader), not when its
   * connection is free to send it: the server is never left waiting while its next rows are made,
   * and making them overlaps the loads under way.
   */
  private prepare(item: Item): void {
    if (item.load === undefined || !item.raw || item.rows) return;
    const head = insertHead(item.raw);
    if (!head) return;
    const room = rowsRoom(item.raw.length);
    const out = room > SCRATCH_BYTES ? Buffer.allocUnsafe(room) : (this.scratch ??= Buffer.allocUnsafe(SCRATCH_BYTES));
    const r = insertRowsInto(item.raw, head, out, 0);
    if (!r) return;
    const data = Buffer.allocUnsafe(r.end);
    out.copy(data, 0, 0, r.end);
    item.rows = { data, count: r.count, table: head.table, columns: head.columns };
    item.raw = Buffer.from(item.raw.subarray(0, 256));
  }

  private enqueue(lane: Lane, item: Item): void {
    this.prepare(item);
    lane.push(item);
    this.queuedTotal += item.bytes;
    if (item.table !== undefined) {
      const key = `${item.db}.${item.table}`;
      (this.pending.get(key) ?? this.pending.set(key, { n: 0, after: [], waiters: [] }).get(key)!).n++;
    }
    void this.pump(lane);
  }

  private settle(): void {
    if (this.wakeReader && (this.queuedTotal < this.cap || this.failure)) {
      const w = this.wakeReader;
      this.wakeReader = undefined;
      w();
    }
    if (this.allIdle() || this.failure) this.idleWaiters.splice(0).forEach((w) => w());
    if (this.allQuiet() || this.failure) this.quietWaiters.splice(0).forEach((w) => w());
  }

  private async pump(lane: Lane): Promise<void> {
    if (lane.busy) return;
    lane.busy = true;
    while (lane.queue.length > 0 && !this.failure) {
      const item = lane.shift();
      lane.current = item;
      const batch = [item];
      try {
        if (item.db !== undefined && item.db !== lane.db) {
          await lane.conn.query(`USE ${q(item.db)}`);
          lane.db = item.db;
        }
        if (item.rows) {
          // Consecutive INSERTs into the same table go out as one LOAD DATA of up to LOAD_BYTES:
          // per statement, LOCAL INFILE costs two round trips more than an INSERT.
          const { table, columns } = item.rows;
          const parts = [item.rows.data];
          let bytes = item.rows.data.length;
          let count = item.rows.count;
          for (let next = lane.queue[0]; next?.rows && bytes < LOAD_BYTES; next = lane.queue[0]) {
            if (next.load !== item.load || next.db !== item.db || next.table !== item.table) break;
            if (next.rows.table !== table || next.rows.columns !== columns) break;
            batch.push(lane.shift());
            parts.push(next.rows.data);
            bytes += next.rows.data.length;
            count += next.rows.count;
          }
          const loaded = await lane.conn.loadLocal(`LOAD DATA LOCAL INFILE 'dump' INTO TABLE ${table} CHARACTER SET ${item.load} ${columns ?? ''}`, parts);
          // LOCAL turns duplicate keys and refused values into warnings: any is a failure, as the INSERT's error would be.
          if (loaded.rows !== count || loaded.warnings > 0) {
            throw new Error(`LOAD DATA of ${batch.length} INSERT(s) with ${count} rows loaded ${loaded.rows} with ${loaded.warnings} warning(s) (duplicate keys, or values the columns refuse); load this dump with the mariadb client to see the server's own error`);
          }
        } else {
          await lane.conn.query(text(item));
        }
      } catch (err) {
        const shown = item.sql ?? item.raw?.toString('latin1', 0, 201) ?? '';
        const where = item.table ? ` (table ${item.db}.${item.table})` : item.db ? ` (database ${item.db})` : '';
        this.failure ??= new LeapfrogError('input', `restore failed${where}: ${(err as Error).message}`, {
          cause: err,
          details: [`statement: ${shown.slice(0, 200).replace(/\s+/g, ' ')}${shown.length > 200 ? '…' : ''}`],
        });
      }
      for (const done of batch) {
        lane.queued -= done.bytes;
        this.queuedTotal -= done.bytes;
        if (done.table !== undefined) {
          const p = this.pending.get(`${done.db}.${done.table}`)!;
          // What waits behind the table is queued first, so whoever waits for the table waits for it too.
          if (--p.n === 0) for (const next of p.after.splice(0)) this.toLeastLoaded(next);
          if (p.n === 0) p.waiters.splice(0).forEach((w) => w());
        }
      }
      lane.current = undefined;
      this.settle();
    }
    lane.busy = false;
    this.settle();
  }
}
