import { randomBytes } from 'node:crypto';
import { existsSync, rmSync } from 'node:fs';
import path from 'node:path';
import type { Chain } from '../chain/types.js';
import { withTarget } from '../database/session.js';
import { snapshotDatabase } from '../database/snapshot.js';
import { describeTarget, sqliteFile, type Target } from '../database/url.js';
import { LeapfrogError } from '../errors.js';

/**
 * --from URL: the chain's databases copied from a live target. SQLite: its
 * files (copied again by the rehearsal). MySQL: one consistent
 * `mariadb-dump --single-transaction` per database, the same dumper `run`
 * snapshots with, written gzipped under the rehearsal's state and restored
 * from there like any dump.
 */
export async function dumpsFrom(t: Target, url: string, chain: Chain, stateDir: string, say: (text: string) => void): Promise<{ dumps: string[]; cleanup: () => void }> {
  const names = Object.values(chain.projects).flatMap((p) => Object.values(p.databases));
  if (t.kind === 'sqlite') {
    const files = names.map((n) => sqliteFile(t.dir, n)).filter((f) => existsSync(f));
    if (files.length === 0) throw new LeapfrogError('input', `--from ${url}: none of the chain's databases (${names.join(', ')}) is there`);
    return { dumps: files, cleanup: () => {} };
  }
  const dir = path.join(path.resolve(stateDir), 'rehearsals', `from-${process.pid}-${randomBytes(3).toString('hex')}`);
  const cleanup = () => rmSync(dir, { recursive: true, force: true });
  try {
    const dumps = await withTarget(t, async (session) => {
      const out: string[] = [];
      for (const name of names) {
        if (!(await session.exists(name))) continue;
        say(`${new Date().toISOString().slice(11, 19)} copying ${name} from ${describeTarget(t)} (mariadb-dump --single-transaction)`);
        const f = await snapshotDatabase(session, name, dir, { level: 1 });
        if (f.file) out.push(f.file);
      }
      return out;
    });
    if (dumps.length === 0) throw new LeapfrogError('input', `--from ${url}: none of the chain's databases (${names.join(', ')}) exists there`);
    return { dumps, cleanup };
  } catch (err) {
    cleanup();
    throw err;
  }
}

