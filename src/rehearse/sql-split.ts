/**
 * Splitting a SQL dump into statements, and saying what each one touches:
 * pure functions over bytes and text, no I/O. The splitter follows the
 * mariadb client's rules: `;` ends a statement outside quotes ('…', "…",
 * `…`, with backslash escapes) and comments (`-- `, `#`, C-style), and a
 * `DELIMITER xx` line changes the terminator (dumps of triggers and
 * routines use `;;`). Conditional comments (`/*!40101 SET … *\/`) are kept:
 * the server runs them.
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

export interface Statement {
  /** The statement's bytes decoded as latin1 (one character per byte), without its terminator. */
  sql: string;
  bytes: number;
}

/** Incremental splitter: feed chunks, get whole statements. */
export class StatementSplitter {
  private state = S.Normal;
  private escaped = false;
  private parts: Buffer[] = [];
  private partBytes = 0;
  private delimiter = Buffer.from(';');

  push(chunk: Buffer, out: Statement[]): void {
    let start = 0;
    const n = chunk.length;
    const d0 = this.delimiter[0]!;
    const single = this.delimiter.length === 1 && d0 === SEMI;
    for (let i = 0; i < n; i++) {
      const c = chunk[i]!;
      switch (this.state) {
        case S.Normal:
          if (c === 0x27) this.state = S.Single;
          else if (c === 0x22) this.state = S.Double;
          else if (c === 0x60) this.state = S.Back;
          else if (c === 0x23) this.state = S.Line;
          else if (c === 0x2d && chunk[i + 1] === 0x2d && (i + 2 >= n || chunk[i + 2]! <= 0x20)) this.state = S.Line;
          else if (c === 0x2f && chunk[i + 1] === 0x2a && chunk[i + 2] !== 0x21) this.state = S.Block;
          else if (c === NL) {
            // A DELIMITER command is a client command on its own line.
            const m = /^delimiter\s+(\S+)\s*$/i.exec(stripLeading(this.peek(chunk, start, i)));
            if (m) {
              this.delimiter = Buffer.from(m[1]!, 'latin1');
              this.reset();
              return this.push(chunk.subarray(i + 1), out);
            }
          } else if (single ? c === SEMI : c === d0 && this.matchesDelimiter(chunk, i)) {
            // "DELIMITER ;;" holds the old terminator: the line ends the command, not its semicolon.
            if (/^delimiter\s/i.test(stripLeading(this.peek(chunk, start, i)))) break;
            this.emit(chunk, start, i, out);
            start = i + this.delimiter.length;
            i = start - 1;
          }
          break;
        case S.Single:
        case S.Double:
        case S.Back:
          if (this.escaped) this.escaped = false;
          else if (c === 0x5c && this.state !== S.Back) this.escaped = true;
          else if ((c === 0x27 && this.state === S.Single) || (c === 0x22 && this.state === S.Double) || (c === 0x60 && this.state === S.Back)) this.state = S.Normal;
          break;
        case S.Line:
          if (c === NL) this.state = S.Normal;
          break;
        case S.Block:
          if (c === 0x2f && i > 0 && chunk[i - 1] === 0x2a) this.state = S.Normal;
          break;
      }
    }
    if (start < n) {
      this.parts.push(chunk.subarray(start));
      this.partBytes += n - start;
    }
  }

  /** The input ended: whatever is left is the last statement (a dump may omit the final `;`). */
  end(out: Statement[]): void {
    if (this.partBytes > 0) this.emit(Buffer.alloc(0), 0, 0, out);
  }

  private matchesDelimiter(chunk: Buffer, i: number): boolean {
    // A delimiter split across chunks is not matched; dumps write it at the end of a line, well inside a chunk.
    for (let k = 1; k < this.delimiter.length; k++) if (chunk[i + k] !== this.delimiter[k]) return false;
    return true;
  }

  private peek(chunk: Buffer, start: number, end: number): string {
    if (this.partBytes + (end - start) > 200) return '';
    return Buffer.concat([...this.parts, chunk.subarray(start, end)]).toString('latin1');
  }

  private emit(chunk: Buffer, start: number, end: number, out: Statement[]): void {
    const body = this.parts.length === 0 ? chunk.subarray(start, end) : Buffer.concat([...this.parts, chunk.subarray(start, end)]);
    const sql = body.toString('latin1');
    this.reset();
    if (stripLeading(sql.length > 4096 ? sql.slice(0, 4096) : sql) !== '') out.push({ sql, bytes: body.length + this.delimiter.length });
  }

  private reset(): void {
    this.parts = [];
    this.partBytes = 0;
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

/**
 * A plain multi-row `INSERT INTO t [(cols)] VALUES (…),(…)` as rows for
 * LOAD DATA (tab-separated, backslash escapes, \N for NULL), which the
 * server loads without running its SQL parser over every value: about
 * twice as fast as the INSERT. Values may be NULL, numbers and quoted
 * strings; anything else (hex literals, _binary, expressions, ON
 * DUPLICATE KEY …) returns undefined and the INSERT runs as written.
 */
const SPECIAL = /['\\\t\n\r]/g;

export function insertAsRows(sql: string): { table: string; columns: string | undefined; rows: string; count: number } | undefined {
  const head = /^\s*INSERT\s+INTO\s+(`(?:[^`]|``)+`|[A-Za-z0-9_$]+)\s*(\((?:[^()'"]|`[^`]*`)*\))?\s*VALUES\s*/iy.exec(sql);
  if (!head) return undefined;
  const n = sql.length;
  let i = head[0].length;
  const out: string[] = [];
  let count = 0;
  const ws = (c: number) => c === 32 || c === 10 || c === 13 || c === 9;
  for (;;) {
    if (sql.charCodeAt(i) !== 40 /* ( */) return undefined;
    i++;
    for (;;) {
      while (ws(sql.charCodeAt(i))) i++;
      const c = sql.charCodeAt(i);
      if (c === 39 /* ' */) {
        i++;
        let seg = i;
        for (;;) {
          // Jump to the next character that needs care (native regex scan), copy the run before it.
          SPECIAL.lastIndex = i;
          const m = SPECIAL.exec(sql);
          if (!m) return undefined;
          i = m.index;
          const d = sql.charCodeAt(i);
          if (d === 39) {
            if (sql.charCodeAt(i + 1) === 39) {
              out.push(sql.slice(seg, i), "'");
              i += 2;
              seg = i;
              continue;
            }
            out.push(sql.slice(seg, i));
            i++;
            break;
          }
          if (d === 92 /* \ */) {
            out.push(sql.slice(seg, i));
            const e = sql[i + 1];
            // Escapes LOAD DATA reads the same way pass through; \' and \" become the bare quote.
            if (e === '0' || e === 'b' || e === 'n' || e === 'r' || e === 't' || e === 'Z' || e === '\\') out.push('\\' + e);
            else if (e === '%' || e === '_') out.push('\\\\' + e);
            else if (e !== undefined) out.push(e);
            i += 2;
            seg = i;
            continue;
          }
          out.push(sql.slice(seg, i), d === 9 ? '\\t' : d === 10 ? '\\n' : '\\r');
          i++;
          seg = i;
        }
      } else {
        let j = i;
        let numeric = true;
        while (j < n) {
          const d = sql.charCodeAt(j);
          if (d === 44 || d === 41 || ws(d)) break;
          // digits, sign, point, exponent
          if (!((d >= 48 && d <= 57) || d === 45 || d === 43 || d === 46 || d === 101 || d === 69)) numeric = false;
          j++;
        }
        if (j === i) return undefined;
        if (numeric) out.push(sql.slice(i, j));
        else if (j - i === 4 && sql.slice(i, j).toUpperCase() === 'NULL') out.push('\\N');
        else return undefined;
        i = j;
      }
      while (ws(sql.charCodeAt(i))) i++;
      const sep = sql.charCodeAt(i);
      i++;
      if (sep === 44 /* , */) out.push('\t');
      else if (sep === 41 /* ) */) break;
      else return undefined;
    }
    out.push('\n');
    count++;
    while (ws(sql.charCodeAt(i))) i++;
    if (i >= n) break;
    if (sql.charCodeAt(i) !== 44) return undefined;
    i++;
    while (ws(sql.charCodeAt(i))) i++;
  }
  return { table: head[1]!, columns: head[2], rows: out.join(''), count };
}
