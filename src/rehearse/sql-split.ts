/**
 * Splitting a SQL dump into statements, and saying what each one touches:
 * pure functions over bytes and text, no I/O. The splitter follows the
 * mariadb client's rules: `;` ends a statement outside quotes ('…', "…",
 * `…`, with backslash escapes) and comments (`-- `, `#`, C-style), and a
 * `DELIMITER xx` line changes the terminator (dumps of triggers and
 * routines use `;;`). Conditional comments (`/*!40101 SET … *\/`) are kept:
 * the server runs them.
 *
 * Bytes arrive in chunks that may cut `--`, `/*`, `*\/`, a multi-byte
 * delimiter or a DELIMITER line anywhere: the last few bytes of a chunk
 * are carried to the next one before they are looked at, and no decision
 * looks behind. A DELIMITER command is recognised as the client does
 * (client/mysql.cc, read_and_execute: a command is read only while the
 * statement buffer is empty, and comments do not fill it), so it may
 * follow comments of any length. A statement longer than the cap is an
 * error, not an unbounded buffer.
 */

const enum S {
  Normal,
  Single,
  Double,
  Back,
  Line,
  Block,
}

const SEMI = 0x3b;
const NL = 0x0a;
const EMPTY = Buffer.alloc(0);
/** A DELIMITER line is short; a longer first line is a statement. */
const HEAD_MAX = 256;
const DELIMITER_LINE = /^delimiter\s+(\S+)\s*$/i;

export interface Statement {
  /** The statement's bytes decoded as latin1 (one character per byte), without its terminator. */
  readonly sql: string;
  /** The statement's bytes, without its terminator (may share memory with the chunk it was read in). */
  readonly raw: Buffer;
  bytes: number;
  /** The line of the dump its first byte that is not blank or a comment is on (1-based). */
  line: number;
}

/**
 * A statement whose text is decoded only when asked for: most of a dump's
 * bytes are INSERTs that go to the server as LOAD DATA rows made from the
 * bytes, and decoding each into a string first cost a copy and garbage.
 */
class SplitStatement implements Statement {
  private text: string | undefined;
  constructor(
    readonly raw: Buffer,
    readonly bytes: number,
    readonly line: number,
  ) {}
  get sql(): string {
    return (this.text ??= this.raw.toString('latin1'));
  }
}

/** A statement grew past the splitter's cap. */
export class StatementTooLarge extends Error {
  constructor(
    readonly line: number,
    readonly bytes: number,
    readonly cap: number,
  ) {
    super(`the statement starting at line ${line} is over ${cap} bytes (${bytes} read so far)`);
    this.name = 'StatementTooLarge';
  }
}

/** Incremental splitter: feed chunks, get whole statements. */
export class StatementSplitter {
  private state = S.Normal;
  private escaped = false;
  /** In a C comment: the previous byte was `*`. */
  private star = false;
  private parts: Buffer[] = [];
  private partBytes = 0;
  /** The last bytes of the previous chunk, not looked at yet. */
  private carry: Buffer = EMPTY;
  private delimiter = Buffer.from(';');
  /** The line of the next byte. */
  private line = 1;
  /** The line of the current statement's first significant byte; 0 while it has none. */
  private stmtLine = 0;
  /** The statement's first line, while it may still be a DELIMITER command. */
  private head = '';
  private headOpen = false;

  constructor(private readonly maxStatementBytes = Number.POSITIVE_INFINITY) {}

  push(chunk: Buffer, out: Statement[]): void {
    const buf = this.carry.length > 0 ? Buffer.concat([this.carry, chunk]) : chunk;
    this.carry = EMPTY;
    this.scan(buf, false, out);
  }

  /** The input ended: whatever is left is the last statement (a dump may omit the final `;`). */
  end(out: Statement[]): void {
    const rest = this.carry;
    this.carry = EMPTY;
    this.scan(rest, true, out);
    if (this.headOpen && DELIMITER_LINE.test(this.head)) this.reset(); // a last DELIMITER line without its newline
    if (this.partBytes > 0) this.emit(EMPTY, 0, 0, out);
  }

  private scan(buf: Buffer, final: boolean, out: Statement[]): void {
    let start = 0;
    const n = buf.length;
    // How far ahead a decision may look: `-- `, `/*!`, and the delimiter's length.
    const lookahead = () => (final ? 0 : Math.max(2, this.delimiter.length - 1));
    let limit = Math.max(0, n - lookahead());
    let d0 = this.delimiter[0]!;
    let single = this.delimiter.length === 1 && d0 === SEMI;
    let i = 0;
    for (; i < limit; i++) {
      // Most of a dump is the inside of INSERTs: there, past the statement's first line (or its first
      // HEAD_MAX bytes), bytes that can change nothing are skipped in a tight loop: inside a quoted
      // string all but its quote, a backslash and a newline; outside, all but quotes, comment starts,
      // the delimiter's first byte and a newline.
      if (!this.headOpen || this.head.length >= HEAD_MAX) {
        const st = this.state;
        if ((st === S.Single || st === S.Double || st === S.Back) && !this.escaped) {
          const quote = st === S.Single ? 0x27 : st === S.Double ? 0x22 : 0x60;
          const escape = st === S.Back ? -1 : 0x5c;
          for (let b = buf[i]!; b !== quote && b !== escape && b !== NL; b = buf[i]!) if (++i >= limit) break;
        } else if (st === S.Normal && this.stmtLine !== 0) {
          for (let b = buf[i]!; b !== NL && b !== 0x27 && b !== 0x22 && b !== 0x60 && b !== 0x23 && b !== 0x2d && b !== 0x2f && b !== d0; b = buf[i]!) if (++i >= limit) break;
        }
        if (i >= limit) break;
      }
      const c = buf[i]!;
      if (c === NL) this.line++;
      if (this.headOpen && c !== NL && this.head.length < HEAD_MAX) this.head += String.fromCharCode(c);
      switch (this.state) {
        case S.Normal:
          if (c === NL) {
            if (!this.headOpen) break;
            this.headOpen = false;
            const m = DELIMITER_LINE.exec(this.head);
            if (m) {
              // A client command, not a statement: drop it (and the comments before it).
              this.delimiter = Buffer.from(m[1]!, 'latin1');
              this.reset();
              start = i + 1;
              d0 = this.delimiter[0]!;
              single = this.delimiter.length === 1 && d0 === SEMI;
              limit = Math.max(0, n - lookahead());
            }
          } else if (c === 0x20 || c === 0x09 || c === 0x0d) {
            // blank
          } else if (c === 0x23) this.state = S.Line;
          else if (c === 0x2d && buf[i + 1] === 0x2d && (i + 2 >= n || buf[i + 2]! <= 0x20)) this.state = S.Line;
          else if (c === 0x2f && buf[i + 1] === 0x2a && buf[i + 2] !== 0x21) {
            this.state = S.Block;
            this.star = false;
            i++; // the `*` of `/*` does not close it: `/*/` is still open
          } else {
            if (this.stmtLine === 0) {
              // The statement starts here: blanks and comments before it are dropped (the client
              // drops them too), so they count toward no cap and any number of them costs no memory.
              this.parts = [];
              this.partBytes = 0;
              start = i;
              this.stmtLine = this.line;
              this.head = String.fromCharCode(c);
              this.headOpen = true;
            }
            if (c === 0x27) this.state = S.Single;
            else if (c === 0x22) this.state = S.Double;
            else if (c === 0x60) this.state = S.Back;
            else if (single ? c === SEMI : c === d0 && this.matchesDelimiter(buf, i)) {
              // "DELIMITER ;;" holds the old terminator: the line ends the command, not its semicolon.
              if (this.headOpen && /^delimiter\s/i.test(this.head)) break;
              this.emit(buf, start, i, out);
              start = i + this.delimiter.length;
              i = start - 1;
            }
          }
          break;
        case S.Single:
        case S.Double:
        case S.Back:
          if (c === NL) this.headOpen = false;
          if (this.escaped) this.escaped = false;
          else if (c === 0x5c && this.state !== S.Back) this.escaped = true;
          else if ((c === 0x27 && this.state === S.Single) || (c === 0x22 && this.state === S.Double) || (c === 0x60 && this.state === S.Back)) this.state = S.Normal;
          break;
        case S.Line:
          if (c === NL) {
            this.state = S.Normal;
            this.headOpen = false;
          }
          break;
        case S.Block:
          if (c === NL) this.headOpen = false;
          if (c === 0x2f && this.star) this.state = S.Normal;
          this.star = c === 0x2a;
          break;
      }
    }
    // `i` is the first byte not looked at (a skip may have gone past `limit`).
    const keep = Math.max(start, i);
    if (this.stmtLine === 0) start = keep; // only blanks and comments so far: nothing to keep
    if (keep > start) {
      this.parts.push(buf.subarray(start, keep));
      this.partBytes += keep - start;
    }
    // Copied: a subarray would keep the whole chunk alive.
    this.carry = keep < n ? Buffer.from(buf.subarray(keep)) : EMPTY;
    if (this.partBytes > this.maxStatementBytes) throw new StatementTooLarge(this.stmtLine || this.line, this.partBytes, this.maxStatementBytes);
  }

  private matchesDelimiter(buf: Buffer, i: number): boolean {
    for (let k = 1; k < this.delimiter.length; k++) if (buf[i + k] !== this.delimiter[k]) return false;
    return true;
  }

  private emit(buf: Buffer, start: number, end: number, out: Statement[]): void {
    const bytes = this.partBytes + (end - start);
    if (bytes > this.maxStatementBytes) throw new StatementTooLarge(this.stmtLine || this.line, bytes, this.maxStatementBytes);
    const line = this.stmtLine;
    const body = this.parts.length === 0 ? buf.subarray(start, end) : Buffer.concat([...this.parts, buf.subarray(start, end)]);
    this.reset();
    // Only blanks and comments: nothing to run.
    if (line !== 0) out.push(new SplitStatement(body, body.length + this.delimiter.length, line));
  }

  private reset(): void {
    this.parts = [];
    this.partBytes = 0;
    this.stmtLine = 0;
    this.headOpen = false;
    this.head = '';
  }
}

/** The statement without leading whitespace and plain comments (conditional comments are unwrapped). */
export function stripLeading(sql: string): string {
  let s = sql;
  for (;;) {
    s = s.replace(/^\s+/, '');
    if (s.startsWith('--') || s.startsWith('#')) {
      const nl = s.indexOf('\n');
      s = nl < 0 ? '' : s.slice(nl + 1);
    } else if (s.startsWith('/*!')) {
      return s.replace(/^\/\*!\d*\s*/, '').replace(/\s*\*\/\s*$/, '');
    } else if (s.startsWith('/*')) {
      const e = s.indexOf('*/');
      s = e < 0 ? '' : s.slice(e + 2);
    } else return s;
  }
}

export type Classified =
  | { kind: 'use'; database: string }
  /** Affects only the connection (SET …, transactions): every connection runs it. */
  | { kind: 'session' }
  /** `database` when the dump names it (`db`.`table`); mariadb-dump never does. */
  | { kind: 'insert'; table: string; database?: string }
  /** DDL and anything else about one table: runs after that table's earlier statements. */
  | { kind: 'table'; table: string; database?: string }
  | { kind: 'create-database'; database: string }
  | { kind: 'drop-database'; database: string }
  /** LOCK/UNLOCK TABLES, ALTER TABLE … DISABLE/ENABLE KEYS: MyISAM speed hints that would serialise parallel loading; dropped. */
  | { kind: 'skip' }
  /** Anything else (views, triggers, routines, DROP DATABASE): runs alone, after everything before it. */
  | { kind: 'other' };

const ident = '(?:`((?:[^`]|``)+)`|([A-Za-z0-9_$]+))';
const qualified = `(?:${ident}\\.)?${ident}`;
const unq = (m: RegExpExecArray, a: number, b: number) => (m[a] !== undefined ? m[a]!.replace(/``/g, '`') : m[b]!);

const RE = {
  use: new RegExp(`^use\\s+${ident}\\s*$`, 'i'),
  insert: new RegExp(`^(?:insert|replace)(?:\\s+(?:low_priority|delayed|high_priority|ignore))*\\s+(?:into\\s+)?${qualified}`, 'i'),
  table: new RegExp(`^(?:create(?:\\s+or\\s+replace)?(?:\\s+temporary)?\\s+table(?:\\s+if\\s+not\\s+exists)?|drop\\s+table(?:\\s+if\\s+exists)?|alter(?:\\s+ignore)?\\s+table|truncate(?:\\s+table)?)\\s+${qualified}\\s*(?:[(\\s,;]|$)`, 'i'),
  index: new RegExp(`^create\\s+(?:unique\\s+|fulltext\\s+|spatial\\s+)?index\\s+${ident}\\s+on\\s+${qualified}`, 'i'),
  dropDb: new RegExp(`^drop\\s+(?:database|schema)(?:\\s+if\\s+exists)?\\s+${ident}`, 'i'),
  createDb: new RegExp(`^create\\s+(?:database|schema)(?:\\s+/\\*!\\d+\\s+if\\s+not\\s+exists\\s*\\*/|\\s+if\\s+not\\s+exists)?\\s+${ident}`, 'i'),
  session: /^(?:set\b|begin\b|start\s+transaction\b|commit\b|rollback\b)/i,
  lock: /^(?:lock\s+tables?|unlock\s+tables?)\b/i,
  keys: /^alter\s+table\s+\S+\s+(?:disable|enable)\s+keys\s*$/i,
};

export function classify(sql: string): Classified {
  // Only the head decides; an INSERT may be megabytes long.
  const s = stripLeading(sql.length > 4096 ? sql.slice(0, 4096) : sql);
  let m: RegExpExecArray | null;
  const qual = (m: RegExpExecArray, a: number, b: number) => (m[a] !== undefined || m[b] !== undefined ? { database: unq(m, a, b) } : {});
  if ((m = RE.insert.exec(s))) return { kind: 'insert', table: unq(m, 3, 4), ...qual(m, 1, 2) };
  if (RE.session.test(s)) return { kind: 'session' };
  // mariadb-dump's DISABLE/ENABLE KEYS around a table's rows: a no-op on InnoDB, and secondary keys are deferred anyway.
  if (RE.keys.test(s)) return { kind: 'skip' };
  if ((m = RE.table.exec(s))) return { kind: 'table', table: unq(m, 3, 4), ...qual(m, 1, 2) };
  if ((m = RE.index.exec(s))) return { kind: 'table', table: unq(m, 5, 6), ...qual(m, 3, 4) };
  if ((m = RE.use.exec(s))) return { kind: 'use', database: unq(m, 1, 2) };
  if ((m = RE.createDb.exec(s))) return { kind: 'create-database', database: unq(m, 1, 2) };
  if ((m = RE.dropDb.exec(s))) return { kind: 'drop-database', database: unq(m, 1, 2) };
  if (RE.lock.test(s)) return { kind: 'skip' };
  return { kind: 'other' };
}

/** The database a dump file restores into when it has no USE of its own: its name without .sql/.gz. */
export function databaseFromFileName(file: string): string {
  const base = file.split('/').pop() ?? file;
  return base.replace(/(\.gz)$/i, '').replace(/\.(sql|dump)$/i, '');
}

/**
 * Secondary indexes are cheaper built once after the rows are in (InnoDB
 * sorts and bulk-loads them) than maintained row by row. For a CREATE TABLE
 * in mariadb-dump's layout (one column or key per line), the plain `KEY`
 * lines are taken out and returned as ALTER TABLE clauses to run after the
 * table's data; UNIQUE, FULLTEXT, SPATIAL and keys of tables with foreign
 * keys stay where they are. Undefined when there is nothing to defer.
 */
export function deferKeys(sql: string): { sql: string; clauses: string[] } | undefined {
  if (!/^\s*create\s+table/i.test(stripLeading(sql)) || /\bforeign\s+key\b/i.test(sql)) return undefined;
  const lines = sql.split('\n');
  const first = lines.findIndex((l) => /^\s*create\s+table/i.test(stripLeading(l)) || /\(\s*$/.test(l));
  const close = lines.findIndex((l, i) => i > first && /^\)/.test(l));
  if (first < 0 || close < 0) return undefined;
  const body = lines.slice(first + 1, close).map((l) => l.replace(/,\s*$/, ''));
  const isKey = (l: string) => /^\s+KEY\s+`(?:[^`]|``)+`\s*\(.*\)(?:\s+USING\s+\w+)?\s*$/i.test(l);
  const clauses = body.filter(isKey).map((l) => `ADD ${l.trim()}`);
  if (clauses.length === 0) return undefined;
  const kept = body.filter((l) => !isKey(l));
  return { sql: [...lines.slice(0, first + 1), kept.join(',\n'), ...lines.slice(close)].join('\n'), clauses };
}

/** `CREATE INDEX name ON table (cols)` (not UNIQUE) as an ALTER TABLE clause, to run after the table's data. */
export function deferCreateIndex(sql: string): string | undefined {
  const m = /^create\s+index\s+(`(?:[^`]|``)+`|[A-Za-z0-9_$]+)\s+on\s+(?:`(?:[^`]|``)+`|[A-Za-z0-9_$]+)\s*(\(.*\))\s*$/is.exec(stripLeading(sql));
  return m ? `ADD INDEX ${m[1]} ${m[2]}` : undefined;
}
