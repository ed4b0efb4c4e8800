import type { Chain } from '../chain/types.js';
import { formatBytes } from '../report/format.js';
import type { CheckFacts, CheckRow, Result } from './facts.js';
import { plural, row } from './rules.js';

/**
 * The checks of the server around the databases: who is connected, open
 * transactions and metadata locks, storage engines, collations, and the
 * state directory's free space for snapshots. Pure functions over facts.
 */

const NOT_APPLICABLE_SQLITE = 'Not applicable: SQLite';

export function clientsCheck(f: Pick<CheckFacts, 'mysql' | 'sqlite'>): CheckRow {
  const name = 'Connected clients';
  if (f.sqlite) {
    const h = f.sqlite.holders;
    if (h === undefined) return row(name, 'Success', 'Not applicable: this system has no /proc to list the processes holding the database files.');
    if (h.length === 0) return row(name, 'Success', 'No other process has the database files open (processes of other users are visible only to root).', h);
    return row(
      name,
      'Failure',
      [`${plural(h.length, 'process', 'processes')} still hold the database files open: stop the services before the window (the upgrade is offline):`, ...h.map((x) => `pid ${x.pid} (${x.command}): ${x.file}`)].join('\n'),
      h,
    );
  }
  const m = f.mysql!;
  if (m.clients.length > 0) {
    return row(
      name,
      'Failure',
      [
        `${plural(m.clients.length, 'connection')} to the chain's databases: services still running? Stop them (the upgrade is offline), or KILL the connections:`,
        ...m.clients.map((c) => `id ${c.id} ${c.user}@${c.host} on ${c.db}: ${c.command} ${c.time} s${c.state ? ` (${c.state})` : ''}`),
      ].join('\n'),
      m.clients,
    );
  }
  if (!m.canSeeAllClients) {
    return row(name, 'Warning', 'No other connection visible, but this account lacks the PROCESS privilege, so other accounts\' connections are hidden: check as an account that has it.', m.clients);
  }
  return row(name, 'Success', 'No other connection to the chain\'s databases.', m.clients);
}

export function transactionsCheck(f: Pick<CheckFacts, 'mysql' | 'sqlite' | 'maxTransactionAge'>): CheckRow {
  const name = 'Transactions and locks';
  if (f.sqlite) return row(name, 'Success', `${NOT_APPLICABLE_SQLITE} has no server to list transactions or locks; see Connected clients.`);
  const m = f.mysql!;
  if (m.transactions === undefined) {
    return row(name, 'Warning', 'Not visible: this account lacks the PROCESS privilege that information_schema.INNODB_TRX requires; check as an account that has it.');
  }
  const old = m.transactions.filter((t) => t.ageSeconds >= f.maxTransactionAge);
  const young = m.transactions.filter((t) => t.ageSeconds < f.maxTransactionAge);
  const locks = m.metadataLocks ?? [];
  const lines: string[] = [];
  if (old.length > 0) lines.push(`${plural(old.length, 'transaction')} open ${f.maxTransactionAge} s or more on the chain's databases: a migration's DDL would wait on their metadata locks. Commit, roll back or KILL:`);
  for (const t of old) lines.push(`thread ${t.threadId} ${t.user}@${t.host} on ${t.db}: ${t.state} for ${t.ageSeconds} s`);
  if (locks.length > 0) lines.push(`${plural(locks.length, 'metadata lock')} held on the chain's tables:`, ...locks.map((l) => `thread ${l.threadId}: ${l.mode} on ${l.schema}.${l.table}`));
  if (young.length > 0) lines.push(`${plural(young.length, 'transaction')} open under ${f.maxTransactionAge} s (may finish by itself; check again):`, ...young.map((t) => `thread ${t.threadId} ${t.user}@${t.host} on ${t.db}: ${t.state} for ${t.ageSeconds} s`));
  const visibility = m.metadataLocks === undefined ? 'Metadata locks are not visible on this server (no METADATA_LOCK_INFO plugin, performance_schema off).' : '';
  const result: Result = old.length > 0 || locks.length > 0 ? 'Failure' : young.length > 0 ? 'Warning' : 'Success';
  if (result === 'Success') lines.push('No open transaction on the chain\'s databases.');
  if (visibility) lines.push(visibility);
  return row(name, result, lines.join('\n'), { transactions: m.transactions, metadataLocks: m.metadataLocks ?? null });
}

export function enginesCheck(f: Pick<CheckFacts, 'mysql' | 'sqlite'>): CheckRow {
  const name = 'Storage engines';
  if (f.sqlite) return row(name, 'Success', `${NOT_APPLICABLE_SQLITE} has one storage engine.`);
  const other = f.mysql!.tables.filter((t) => t.engine !== null && t.engine.toLowerCase() !== 'innodb');
  if (other.length === 0) return row(name, 'Success', `All ${plural(f.mysql!.tables.length, 'table')} of the chain's databases are InnoDB.`);
  return row(
    name,
    'Warning',
    [
      `${plural(other.length, 'table is', 'tables are')} not InnoDB: no transactions and no crash recovery, so a migration that dies halfway leaves them half-changed, and a foreign key to them fails. Convert before the window (ALTER TABLE … ENGINE=InnoDB):`,
      ...other.slice(0, 20).map((t) => `${t.schema}.${t.table}: ${t.engine}`),
      ...(other.length > 20 ? [`… and ${other.length - 20} more`] : []),
    ].join('\n'),
    other,
  );
}

export function collationsCheck(chain: Chain, f: Pick<CheckFacts, 'mysql' | 'sqlite'>): CheckRow {
  const name = 'Charsets and collations';
  if (f.sqlite) return row(name, 'Success', `${NOT_APPLICABLE_SQLITE} stores text in one encoding per file.`);
  const lines: string[] = [];
  const mixed: string[] = [];
  const undeclared: string[] = [];
  const data: Record<string, Record<string, number>> = {};
  for (const p of Object.values(chain.projects)) {
    const schemas = new Set(Object.values(p.databases));
    const counts: Record<string, number> = {};
    const examples: Record<string, string> = {};
    for (const t of f.mysql!.tables) {
      if (!schemas.has(t.schema) || t.collation === null) continue;
      counts[t.collation] = (counts[t.collation] ?? 0) + 1;
      examples[t.collation] ??= `${t.schema}.${t.table}`;
    }
    data[p.name] = counts;
    const entries = Object.entries(counts).sort((a, b) => b[1] - a[1]);
    const shown = (es: typeof entries) => es.map(([c, n]) => `${c} (${plural(n, 'table')}${n <= 3 ? `, e.g. ${examples[c]}` : ''})`).join(', ');
    if (p.collations) {
      // The project's own design: only what it does not declare is worth a word.
      const other = entries.filter(([c]) => !p.collations!.includes(c));
      if (other.length > 0) undeclared.push(`${p.name}: ${shown(other)}; the chain declares ${p.collations.join(', ')}`);
      else if (entries.length > 0) lines.push(`${p.name}: ${entries.map(([c]) => c).join(', ')} (as the chain declares)`);
    } else if (entries.length > 1) mixed.push(`${p.name}: ${shown(entries)}`);
    else if (entries.length === 1) lines.push(`${p.name}: ${entries[0]![0]}`);
  }
  const warnings = [
    ...(mixed.length > 0
      ? ['Mixed collations within a project: a migration adding a foreign key between tables of different charsets fails (errno 150), and joins across them cannot use indexes. Convert before the window (ALTER TABLE … CONVERT TO CHARACTER SET …), or, if they are the project\'s own design, declare them in the chain (collations:):', ...mixed]
      : []),
    ...(undeclared.length > 0 ? ['Tables in a collation the chain does not declare for their project (its migrations did not make them so): convert those tables to a declared one before the window (ALTER TABLE … CONVERT TO CHARACTER SET …), leaving the declared ones as they are:', ...undeclared] : []),
  ];
  if (warnings.length > 0) return row(name, 'Warning', [...warnings, ...lines].join('\n'), data);
  return row(name, 'Success', lines.length > 0 ? `Per project: ${lines.join('; ')}.` : 'No tables yet.', data);
}

export function snapshotBytes(f: Pick<CheckFacts, 'mysql' | 'sqlite'>): number {
  if (f.sqlite) return f.sqlite.files.reduce((n, x) => n + x.bytes, 0);
  return (f.mysql?.tables ?? []).reduce((n, t) => n + t.bytes, 0);
}

/**
 * A snapshot of the chain's databases goes into the state directory; less
 * free space than the databases' size is a Failure, less than twice (no room
 * for the logs, a second snapshot, or growth during the run) a Warning.
 */
export function freeSpaceCheck(f: Pick<CheckFacts, 'mysql' | 'sqlite' | 'storage'>): CheckRow {
  const name = 'Free space';
  const need = snapshotBytes(f);
  const { freeBytes, stateDir, measuredAt } = f.storage;
  const data = { stateDir, measuredAt, freeBytes: freeBytes ?? null, snapshotBytes: need };
  const basis = f.sqlite ? 'the database files' : 'the tables\' data and indexes';
  if (freeBytes === undefined) return row(name, 'Warning', `Cannot measure the free space for ${stateDir}: ${f.storage.error ?? 'unknown error'}. Estimated snapshot: ${formatBytes(need)} (${basis}).`, data);
  const head = `${formatBytes(freeBytes)} free at ${measuredAt} (state dir ${stateDir}); estimated snapshot ${formatBytes(need)} (${basis}).`;
  if (freeBytes < need) return row(name, 'Failure', `${head} Not enough for a snapshot: free space, or use another --state-dir.`, data);
  if (freeBytes < 2 * need) return row(name, 'Warning', `${head} Under twice the snapshot: little room for logs, another snapshot or growth during the run.`, data);
  return row(name, 'Success', head, data);
}

