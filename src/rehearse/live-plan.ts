import { LeapfrogError } from '../errors.js';
import { q } from './lanes.js';

/**
 * What a live copy reads and loads, per table: pure functions over the
 * columns and sizes read from information_schema, no I/O.
 *
 * The source server formats each row itself, in LOAD DATA's default text
 * format (fields ended by a tab, lines by a newline, backslash escapes, \N
 * for NULL), so leapfrog moves one value per row from one connection to
 * the other and decodes nothing. Every value is taken as the bytes of its
 * column's own character set (CAST … AS BINARY) and loaded with CHARACTER
 * SET binary, which converts nothing ("binary" means no conversion: MariaDB
 * KB, LOAD DATA INFILE, Character-sets), so a latin1 column next to a
 * utf8mb4 one arrives byte for byte.
 */

export interface ColumnInfo {
  name: string;
  /** information_schema.COLUMNS.DATA_TYPE. */
  type: string;
  /** information_schema.COLUMNS.EXTRA: generated columns are computed on the copy, not loaded. */
  extra: string;
}

/** Types whose text form never holds a tab, a newline or a backslash: no escaping needed. */
const PLAIN = new Set(['tinyint', 'smallint', 'mediumint', 'int', 'integer', 'bigint', 'decimal', 'numeric', 'float', 'double', 'real', 'year', 'date', 'datetime', 'timestamp', 'time']);
/** Spatial values have no text form LOAD DATA reads back as the same value. */
const SPATIAL = new Set(['geometry', 'point', 'linestring', 'polygon', 'multipoint', 'multilinestring', 'multipolygon', 'geometrycollection']);

// MariaDB says VIRTUAL GENERATED, STORED GENERATED (PERSISTENT before 10.2); MySQL 8 also says DEFAULT_GENERATED
// for a column whose default is an expression (DEFAULT CURRENT_TIMESTAMP), which holds real data and is copied.
const generated = (c: ColumnInfo) => /\b(VIRTUAL|PERSISTENT|STORED)\b/i.test(c.extra);

/** Hex literals, so no sql_mode (NO_BACKSLASH_ESCAPES) changes what they mean. */
const BACKSLASH = "X'5C'";
const NULL_MARK = "X'5C4E'"; // \N

function valueExpr(c: ColumnInfo, where: string): string {
  const col = q(c.name);
  const type = c.type.toLowerCase();
  if (SPATIAL.has(type)) throw new LeapfrogError('input', `${where}.${c.name} is a spatial column (${type}), which the live copy does not carry; rehearse from a dump instead (mariadb-dump --hex-blob, then --dump FILE)`);
  if (PLAIN.has(type)) return `IFNULL(${col}, ${NULL_MARK})`;
  // BIT too: its bytes, which LOAD DATA stores as they are. (Not its number through `@v … SET`: on
  // MariaDB 10.11 a SET clause makes LOAD DATA renumber a 0 in an AUTO_INCREMENT column despite
  // NO_AUTO_VALUE_ON_ZERO, tried.) The backslash first, then what would end a field or a line.
  return `IFNULL(REPLACE(REPLACE(REPLACE(CAST(${col} AS BINARY), ${BACKSLASH}, X'5C5C'), X'09', X'5C74'), X'0A', X'5C6E'), ${NULL_MARK})`;
}

export interface TableCopy {
  db: string;
  table: string;
  /** The SELECT of one formatted row per row, without its WHERE. */
  select: string;
  /** The LOAD DATA statement for those rows (the table named without its database: the connection USEs it). */
  load: string;
}

export function tableCopy(db: string, table: string, columns: readonly ColumnInfo[]): TableCopy {
  const stored = columns.filter((c) => !generated(c));
  if (stored.length === 0) throw new LeapfrogError('input', `${db}.${table} has no stored column to copy`);
  const where = `${db}.${table}`;
  const exprs = stored.map((c) => valueExpr(c, where));
  return {
    db,
    table,
    select: `SELECT CONCAT_WS(X'09', ${exprs.join(', ')}) FROM ${q(db)}.${q(table)}`,
    load: `LOAD DATA LOCAL INFILE 'rows' INTO TABLE ${q(table)} CHARACTER SET binary FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' (${stored.map((c) => q(c.name)).join(', ')})`,
  };
}

/**
 * A big table is read in key ranges, so several connections load it side by
 * side: `parts` WHERE clauses over an integer primary key from `min` to
 * `max`, the first and last open-ended so nothing outside is missed.
 */
export function keyRanges(key: string, min: bigint, max: bigint, parts: number): string[] {
  const span = max - min + 1n;
  const n = BigInt(Math.max(1, parts));
  if (n <= 1n || span < n * 2n) return [''];
  const step = span / n;
  const col = q(key);
  const out: string[] = [];
  for (let i = 1n; i < n; i++) {
    const lo = min + step * (i - 1n);
    const hi = min + step * i;
    out.push(i === 1n ? ` WHERE ${col} < ${hi}` : ` WHERE ${col} >= ${lo} AND ${col} < ${hi}`);
  }
  out.push(` WHERE ${col} >= ${min + step * (n - 1n)}`);
  return out;
}

/** Integer types a range split can use. */
export const INTEGER_KEY = new Set(['tinyint', 'smallint', 'mediumint', 'int', 'integer', 'bigint']);
