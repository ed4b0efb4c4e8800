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
  const shape = await session.shape(dbName);
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
