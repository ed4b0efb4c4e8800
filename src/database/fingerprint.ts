import { createHash } from 'node:crypto';
import type { TargetSession } from './session.js';

/**
 * A schema fingerprint: a hash of the tables, columns and indexes of one
 * database, with the structure kept so drift can be explained later.
 */
export interface SchemaShape {
  tables: Record<string, { columns: string[]; indexes: string[] }>;
}

export interface Fingerprint {
  sha256: string;
  shape: SchemaShape;
}

export async function fingerprint(session: TargetSession, dbName: string): Promise<Fingerprint | null> {
  if (!(await session.exists(dbName))) return null;
  const k = session.db(dbName);
  const tables: SchemaShape['tables'] = {};
  if (session.target.kind === 'sqlite') {
    const names = (await k.raw(
      "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
    )) as { name: string }[];
    for (const { name } of names) {
      const q = name.replace(/"/g, '""');
      const cols = (await k.raw(`PRAGMA table_info("${q}")`)) as { name: string; type: string; notnull: number; pk: number }[];
      const idx = (await k.raw(`PRAGMA index_list("${q}")`)) as { name: string; unique: number }[];
      const indexes: string[] = [];
      for (const i of idx) {
        const icols = (await k.raw(`PRAGMA index_info("${i.name.replace(/"/g, '""')}")`)) as { name: string }[];
        indexes.push(`${i.name}(${icols.map((c) => c.name).join(',')})${i.unique ? ' unique' : ''}`);
      }
      tables[name] = {
        columns: cols.map((c) => `${c.name} ${c.type.toLowerCase()}${c.notnull ? ' not null' : ''}${c.pk ? ' pk' : ''}`),
        indexes: indexes.sort(),
      };
    }
  } else {
    const [cols] = (await k.raw(
      `SELECT TABLE_NAME t, COLUMN_NAME c, COLUMN_TYPE ty, IS_NULLABLE n, COLUMN_KEY ck FROM information_schema.COLUMNS
       WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME, ORDINAL_POSITION`,
      [dbName],
    )) as [{ t: string; c: string; ty: string; n: string; ck: string }[]];
    for (const r of cols) {
      (tables[r.t] ??= { columns: [], indexes: [] }).columns.push(`${r.c} ${r.ty}${r.n === 'NO' ? ' not null' : ''}${r.ck === 'PRI' ? ' pk' : ''}`);
    }
    const [idx] = (await k.raw(
      `SELECT TABLE_NAME t, INDEX_NAME i, GROUP_CONCAT(COLUMN_NAME ORDER BY SEQ_IN_INDEX) c, MIN(NON_UNIQUE) nu
       FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? GROUP BY TABLE_NAME, INDEX_NAME ORDER BY TABLE_NAME, INDEX_NAME`,
      [dbName],
    )) as [{ t: string; i: string; c: string; nu: number }[]];
    for (const r of idx) (tables[r.t] ??= { columns: [], indexes: [] }).indexes.push(`${r.i}(${r.c})${Number(r.nu) === 0 ? ' unique' : ''}`);
  }
  const shape: SchemaShape = { tables };
  return { sha256: createHash('sha256').update(JSON.stringify(shape)).digest('hex'), shape };
}

/** What changed between two schema shapes, one line per difference, for people. Pure. */
export function diffShapes(before: SchemaShape, after: SchemaShape): string[] {
  const out: string[] = [];
  const names = [...new Set([...Object.keys(before.tables), ...Object.keys(after.tables)])].sort();
  for (const t of names) {
    const a = before.tables[t];
    const b = after.tables[t];
    if (!a) {
      out.push(`table ${t} added`);
      continue;
    }
    if (!b) {
      out.push(`table ${t} removed`);
      continue;
    }
    const colName = (c: string) => c.split(' ')[0]!;
    const aCols = new Map(a.columns.map((c) => [colName(c), c]));
    const bCols = new Map(b.columns.map((c) => [colName(c), c]));
    for (const [n, c] of bCols) if (!aCols.has(n)) out.push(`table ${t}: column ${c} added`);
    for (const [n, c] of aCols) {
      const now = bCols.get(n);
      if (now === undefined) out.push(`table ${t}: column ${c} removed`);
      else if (now !== c) out.push(`table ${t}: column ${c} changed to ${now}`);
    }
    for (const i of b.indexes) if (!a.indexes.includes(i)) out.push(`table ${t}: index ${i} added`);
    for (const i of a.indexes) if (!b.indexes.includes(i)) out.push(`table ${t}: index ${i} removed`);
  }
  return out;
}
