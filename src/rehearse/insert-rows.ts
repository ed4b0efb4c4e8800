/**
 * INSERT statements turned into rows for LOAD DATA: a pure function over
 * text, no I/O (restore.ts decides when, lanes.ts sends them).
 */

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
