import { existsSync, readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import type { ClientSession } from './session.js';
import { sqliteFile } from './url.js';

/**
 * Facts about the target server that check-migrations judges: who else is
 * connected, open transactions, metadata locks, table engines, collations and
 * sizes. Read-only queries on information_schema; every function returns
 * plain rows so the checks over them (src/check/rules*.ts) stay pure.
 * The MySQL queries are in mysql-facts.ts, the SQLite readings here.
 *
 * Server-wide queries use `TABLE_SCHEMA IN (…)` on purpose: one query per
 * kind of fact, never one per database or table, so a target with thousands
 * of tables is inspected in a few round trips (bench/check.ts).
 */

export interface ServerInfo {
  flavour: 'MariaDB' | 'MySQL' | 'SQLite';
  version: string;
}

/** A client session on one of the chain's databases (time: seconds in its current state). */
export type ClientRow = Omit<ClientSession, 'state'> & { state: string };

export interface TransactionRow {
  threadId: number;
  db: string;
  user: string;
  host: string;
  ageSeconds: number;
  state: string;
}

export interface MetadataLockRow {
  threadId: number;
  schema: string;
  table: string;
  mode: string;
}

export interface TableRow {
  schema: string;
  table: string;
  engine: string | null;
  collation: string | null;
  bytes: number;
}

export interface MysqlFacts {
  /** The account may see other users' connections (PROCESS privilege). */
  canSeeAllClients: boolean;
  clients: ClientRow[];
  /** undefined without the PROCESS privilege, which INNODB_TRX requires. */
  transactions: TransactionRow[] | undefined;
  /** undefined when the server exposes no metadata lock table (no METADATA_LOCK_INFO plugin, performance_schema off). */
  metadataLocks: MetadataLockRow[] | undefined;
  tables: TableRow[];
}

export interface SqliteFileFact {
  name: string;
  file: string;
  exists: boolean;
  /** The file and its -wal, in bytes. */
  bytes: number;
  /** A non-empty rollback journal beside it: a writer is in a transaction, or died in one. */
  journal: boolean;
}

export function sqliteFiles(dir: string, databases: readonly string[]): SqliteFileFact[] {
  return databases.map((name) => {
    const file = sqliteFile(dir, name);
    let bytes = 0;
    for (const f of [file, file + '-wal']) {
      try {
        bytes += statSync(f).size;
      } catch {
        // absent
      }
    }
    let journal = false;
    try {
      journal = statSync(file + '-journal').size > 0;
    } catch {
      // none
    }
    return { name, file, exists: existsSync(file), bytes, journal };
  });
}

export interface FileHolder {
  pid: number;
  command: string;
  file: string;
}

/**
 * Processes other than this one holding one of `files` open (or its journal),
 * found through /proc/<pid>/fd: SQLite has no server to ask who is connected,
 * and an idle connection holds no lock a probe could detect. undefined when
 * /proc is not there (not Linux). Other users' processes are visible only to
 * root, as with lsof.
 */
export function processesHolding(files: readonly string[]): FileHolder[] | undefined {
  if (!existsSync('/proc/self/fd')) return undefined;
  const wanted = new Map<string, string>();
  for (const f of files) for (const suffix of ['', '-wal', '-journal', '-shm']) wanted.set(f + suffix, f);
  const out: FileHolder[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${entry}/fd`);
    } catch {
      continue; // gone, or not ours to read
    }
    const seen = new Set<string>();
    for (const fd of fds) {
      let link: string;
      try {
        link = readlinkSync(`/proc/${entry}/fd/${fd}`);
      } catch {
        continue;
      }
      const f = wanted.get(link);
      if (f === undefined || seen.has(f)) continue;
      seen.add(f);
      let command = '?';
      try {
        // The program name only: another process's argv may carry a password.
        command = readFileSync(`/proc/${entry}/comm`, 'utf8').trim();
      } catch {
        // exited meanwhile
      }
      out.push({ pid: Number(entry), command, file: f });
    }
  }
  return out;
}
