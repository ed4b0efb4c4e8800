import { randomBytes } from 'node:crypto';
import { existsSync, rmSync } from 'node:fs';
import path from 'node:path';
import type { Chain } from '../chain/types.js';
import { withTarget } from '../database/session.js';
import { snapshotDatabase } from '../database/snapshot.js';
import { describeTarget, sqliteFile, type Target } from '../database/url.js';
import { LeapfrogError } from '../errors.js';
import { hasReloadPrivilege } from '../database/live-source.js';
import type { MysqlTarget } from '../database/mysql.js';

/**
 * --from URL: the chain's databases copied from a live target. SQLite: its
 * files (copied again by the rehearsal). MySQL: copied live, server to
 * server, from one snapshot of all of them (live-copy.ts), when the account
 * may take the brief global read lock that needs; otherwise, with a
 * message, one `mariadb-dump --single-transaction` per database, the same
 * dumper `run` snapshots with, written gzipped under the rehearsal's state
 * and restored from there like any dump.
 */
export async function copyFrom(
  t: Target,
  url: string,
  chain: Chain,
  stateDir: string,
  say: (text: string) => void,
): Promise<{ dumps: string[]; live: { source: MysqlTarget; databases: string[] } | undefined; cleanup: () => void }> {
  await sayOtherServers(t, chain, say);
  if (t.kind === 'mysql') {
    const names = Object.values(chain.projects).flatMap((p) => Object.values(p.databases));
    const present = await withTarget(t, async (session) => {
      const out: string[] = [];
      for (const name of names) if (await session.exists(name)) out.push(name);
      return out;
    });
    if (present.length === 0) throw new LeapfrogError('input', `--from ${url}: none of the chain's databases (${names.join(', ')}) exists there`);
    if (await hasReloadPrivilege(t)) return { dumps: [], live: { source: t, databases: present }, cleanup: () => {} };
    say(
      `${new Date().toISOString().slice(11, 19)} --from ${describeTarget(t)}: this account lacks the RELOAD privilege that the brief global read lock of a live copy needs (FLUSH TABLES WITH READ LOCK), ` +
        'so each database is dumped on its own with mariadb-dump --single-transaction and restored: each is consistent, but not at the same point in time as the others, and it is slower. GRANT RELOAD ON *.* to this account for the live copy',
    );
  }
  return { ...(await dumpsFrom(t, url, chain, stateDir, say)), live: undefined };
}

async function dumpsFrom(t: Target, url: string, chain: Chain, stateDir: string, say: (text: string) => void): Promise<{ dumps: string[]; cleanup: () => void }> {
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

/**
 * --from reads one server. A chain that puts databases on servers of their
 * own (`servers:`, nova's cells) has them looked for on that one server too:
 * absent there, the rehearsal has no copy of them (a chain that creates one
 * creates it empty); present, the copy is of whatever that server holds under
 * the name. Either way the DBA hears it, with the way to rehearse them all.
 */
async function sayOtherServers(t: Target, chain: Chain, say: (text: string) => void): Promise<void> {
  const placed = Object.values(chain.projects).flatMap((p) => Object.entries(p.servers ?? {}).map(([logical, server]) => ({ name: p.databases[logical]!, server })));
  if (placed.length === 0) return;
  const there = await withTarget(t, async (session) => {
    const out = new Set<string>();
    for (const d of placed) if (await session.exists(d.name)) out.add(d.name);
    return out;
  });
  const from = describeTarget(t);
  for (const d of placed) {
    say(
      `${new Date().toISOString().slice(11, 19)} --from ${from}: the chain puts ${d.name} on server ${d.server}, and --from reads one server: ` +
        (there.has(d.name) ? `${d.name} is copied from ${from}; if server ${d.server} is another server, that is not its copy` : `${d.name} is not on ${from}, so the rehearsal has no copy of it`) +
        (t.kind === 'sqlite' ? `. To rehearse every server's databases, pass all their .sqlite3 files as --dump FILE...` : `. To rehearse every server's databases, dump each (mariadb-dump --databases NAME) and pass them all as --dump FILE...`),
    );
  }
}
