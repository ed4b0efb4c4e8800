/**
 * INSERT statements turned into rows for LOAD DATA: pure functions over
 * bytes, no I/O (restore.ts decides when, lanes.ts sends them).
 */

/**
 * A plain multi-row `INSERT INTO t [(cols)] VALUES (…),(…)` as rows for
 * LOAD DATA (tab-separated, backslash escapes, \N for NULL), which the
 * server loads without running its SQL parser over every value: about
 * twice as fast as the INSERT. Values may be NULL, numbers and quoted
 * strings; anything else (hex literals, _binary, expressions, ON
 * DUPLICATE KEY …) returns undefined and the INSERT runs as written.
 *
 * It works on the statement's bytes and writes into a buffer the caller
 * gives, byte by byte: the earlier version built the rows as JavaScript
 * strings (a slice per value, then a join, then a copy into a Buffer), and
 * a profile of a 1 GB restore put a quarter of leapfrog's CPU time in that
 * function and another quarter in the garbage collector cleaning up after it.
 */

// No `g` or `y` flag: with one, exec() starts where the previous match ended (lastIndex), so every
// other statement failed to match and ran as an INSERT, through the server's SQL parser.
const HEAD = /^\s*INSERT\s+INTO\s+(`(?:[^`]|``)+`|[A-Za-z0-9_$]+)\s*(\((?:[^()'"]|`[^`]*`)*\))?\s*VALUES\s*/i;
/** The head (INSERT INTO, table, column list) is looked for in this many bytes at most. */
const HEAD_MAX = 64 * 1024;

export interface InsertHead {
  table: string;
  /** The column list as written, parentheses included. */
  columns: string | undefined;
  /** Where the first row's `(` is. */
  valuesAt: number;
}

/** The table, column list and start of the rows of a plain INSERT; undefined for anything else. */
export function insertHead(src: Buffer): InsertHead | undefined {
  const head = HEAD.exec(src.toString('latin1', 0, Math.min(src.length, HEAD_MAX)));
  return head ? { table: head[1]!, columns: head[2], valuesAt: head[0].length } : undefined;
}

/** Room `insertRowsInto` may need for a statement of `bytes`: each byte becomes at most two (a tab becomes `\t`). */
export const rowsRoom = (bytes: number) => 2 * bytes + 16;

/**
 * The rows of a plain INSERT (whose head is `head`) written into `out` from
 * `at`; `out` must have `rowsRoom(src.length)` bytes free. The end offset and
 * the row count, or undefined if the statement is not plain rows (then what
 * was written past `at` is garbage).
 */
export function insertRowsInto(src: Buffer, head: InsertHead, out: Buffer, at: number): { end: number; count: number } | undefined {
  const n = src.length;
  let i = head.valuesAt;
  let o = at;
  let count = 0;
  let c = 0;
  for (;;) {
    if (src[i] !== 0x28 /* ( */) return undefined;
    i++;
    for (;;) {
      while (i < n && ((c = src[i]!) === 0x20 || c === 0x0a || c === 0x0d || c === 0x09)) i++;
      if (i >= n) return undefined;
      c = src[i]!;
      if (c === 0x27 /* ' */) {
        i++;
        for (;;) {
          if (i >= n) return undefined;
          c = src[i]!;
          // Most bytes of a string are above the quote and are not the backslash: copied with one test.
          if (c > 0x27 && c !== 0x5c) {
            out[o++] = c;
            i++;
            continue;
          }
          if (c === 0x27) {
            if (src[i + 1] === 0x27) {
              out[o++] = 0x27;
              i += 2;
              continue;
            }
            i++;
            break;
          }
          if (c === 0x5c /* \ */) {
            if (i + 1 >= n) return undefined;
            const e = src[i + 1]!;
            // Escapes LOAD DATA reads the same way pass through (\0 \b \n \r \t \Z \\); \% and \_ are two
            // characters in a string literal, so the backslash is doubled; \' \" and any other become the bare character.
            if (e === 0x30 || e === 0x62 || e === 0x6e || e === 0x72 || e === 0x74 || e === 0x5a || e === 0x5c) {
              out[o++] = 0x5c;
              out[o++] = e;
            } else if (e === 0x25 || e === 0x5f) {
              out[o++] = 0x5c;
              out[o++] = 0x5c;
              out[o++] = e;
            } else out[o++] = e;
            i += 2;
            continue;
          }
          if (c === 0x09) {
            out[o++] = 0x5c;
            out[o++] = 0x74;
          } else if (c === 0x0a) {
            out[o++] = 0x5c;
            out[o++] = 0x6e;
          } else if (c === 0x0d) {
            out[o++] = 0x5c;
            out[o++] = 0x72;
          } else out[o++] = c;
          i++;
        }
      } else {
        const from = i;
        let numeric = true;
        // Written out as it is read (a number is a few bytes: src.copy's call into C++ per value cost more
        // than the bytes, 3.4 s of a 1.1 GB restore's 21 s); kept only if it is a number.
        let w = o;
        while (i < n) {
          c = src[i]!;
          if (c === 0x2c || c === 0x29 || c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) break;
          // digits, sign, point, exponent
          if (!((c >= 0x30 && c <= 0x39) || c === 0x2d || c === 0x2b || c === 0x2e || c === 0x65 || c === 0x45)) numeric = false;
          out[w++] = c;
          i++;
        }
        if (i === from) return undefined;
        if (numeric) o = w;
        else if (i - from === 4 && (src[from]! | 0x20) === 0x6e && (src[from + 1]! | 0x20) === 0x75 && (src[from + 2]! | 0x20) === 0x6c && (src[from + 3]! | 0x20) === 0x6c) {
          out[o++] = 0x5c;
          out[o++] = 0x4e; // \N
        } else return undefined;
      }
      while (i < n && ((c = src[i]!) === 0x20 || c === 0x0a || c === 0x0d || c === 0x09)) i++;
      const sep = src[i];
      i++;
      if (sep === 0x2c /* , */) out[o++] = 0x09;
      else if (sep === 0x29 /* ) */) break;
      else return undefined;
    }
    out[o++] = 0x0a;
    count++;
    while (i < n && ((c = src[i]!) === 0x20 || c === 0x0a || c === 0x0d || c === 0x09)) i++;
    if (i >= n) break;
    if (src[i] !== 0x2c) return undefined;
    i++;
    while (i < n && ((c = src[i]!) === 0x20 || c === 0x0a || c === 0x0d || c === 0x09)) i++;
  }
  return { end: o, count };
}

/** `insertRowsInto` over text (one character per byte, latin1): for tests and callers that hold a string. */
export function insertAsRows(sql: string): { table: string; columns: string | undefined; rows: string; count: number } | undefined {
  const src = Buffer.from(sql, 'latin1');
  const head = insertHead(src);
  if (!head) return undefined;
  const out = Buffer.allocUnsafe(rowsRoom(src.length));
  const r = insertRowsInto(src, head, out, 0);
  return r ? { table: head.table, columns: head.columns, rows: out.toString('latin1', 0, r.end), count: r.count } : undefined;
}
