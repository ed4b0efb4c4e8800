import { plan as makePlan, type Plan } from '../chain/plan.js';
import type { Chain, StepDef, Version } from '../chain/types.js';
import { formatVersion } from '../chain/version.js';
import { LeapfrogError } from '../errors.js';
import { renderConfig } from '../chain/template.js';
import { projectAddresses } from '../runner/layout.js';
import { prepare, type PreparedStep } from '../runner/runner.js';
import type { BlockerFact, CheckFacts, CheckRow, Result, RunTiming } from './facts.js';

/**
 * The pre-flight checks: pure functions from the facts gather.ts read to
 * result rows, in the manner of `nova-status upgrade check` (each check
 * Success, Warning or Failure with details; the worst one decides the exit
 * code). Nothing here does I/O, so each check is unit-tested with plain
 * objects (test/check-pure.test.ts).
 */

export interface HopEstimate {
  project: string;
  release: string;
  /** Sum of the hop's step durations in the newest succeeded run that completed it; undefined: unknown. */
  ms: number | undefined;
  fromRun: number | undefined;
  /** The run's label (main ledger or a rehearsal's). */
  from?: string | undefined;
}

export interface Estimate {
  hops: HopEstimate[];
  /** Sum over hops when every hop is known. Projects run one after another unless --parallel. */
  totalMs: number | undefined;
  knownMs: number;
}

export interface CheckReport {
  chain: string | undefined;
  target: string;
  checks: CheckRow[];
  result: Result;
  /** As probed; undefined when the target could not be read. */
  versions: Record<string, Record<string, Version>> | undefined;
  plan: Plan | undefined;
  steps: PreparedStep[] | undefined;
  estimate: Estimate | undefined;
}

const RANK: Record<Result, number> = { Success: 0, Warning: 1, Failure: 2 };

export function worst(rows: readonly { result: Result }[]): Result {
  return rows.reduce<Result>((w, r) => (RANK[r.result] > RANK[w] ? r.result : w), 'Success');
}

/** nova-status's mapping: 0 success, 1 warning, 2 failure (255, unexpected errors, is main.ts's). */
export function exitCodeFor(result: Result): number {
  return RANK[result];
}

const row = (check: string, result: Result, details: string, data?: unknown): CheckRow => ({ check, result, details, ...(data === undefined ? {} : { data }) });
const plural = (n: number, word: string, many = `${word}s`) => `${n} ${n === 1 ? word : many}`;

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v.toFixed(0) : v.toFixed(1)} ${units[i]}`;
}

// ---- chain, envs, target, databases, versions, plan ------------------------

export function chainCheck(f: Pick<CheckFacts, 'chain' | 'chainError' | 'chainFile'>): CheckRow {
  if (!f.chain) {
    const e = f.chainError;
    return row('Chain', 'Failure', [e?.message ?? `${f.chainFile}: cannot load`, ...(e?.details ?? [])].join('\n'));
  }
  const c = f.chain;
  const steps = c.releases.reduce((n, r) => n + r.steps.length, 0);
  return row(
    'Chain',
    'Success',
    `${c.name} (${c.file}, sha256 ${c.sha256.slice(0, 12)}) is valid: ${plural(Object.keys(c.projects).length, 'project')}, ${plural(c.releases.length, 'release')} (${c.releases.map((r) => r.release).join(', ')}), ${plural(steps, 'step')}.`,
  );
}

/** The envs the plan needs; every env of the chain when there is no plan. */
export function envsCheck(f: Pick<CheckFacts, 'envs' | 'offline'>, needed: ReadonlySet<string> | undefined): CheckRow {
  const envs = f.envs.filter((e) => needed === undefined || needed.has(e.name));
  if (envs.length === 0) return row('Envs', 'Success', 'No env is needed: nothing to run.');
  const problems: { result: Result; text: string }[] = [];
  let cached = 0;
  let local = 0;
  for (const e of envs) {
    if (!e.def) {
      problems.push({ result: 'Failure', text: `${e.name}: ${e.error ?? 'cannot be loaded'}` });
      continue;
    }
    if (e.cached) {
      cached++;
      continue;
    }
    if (e.def.source.kind === 'file') {
      if (e.sourceExists) local++;
      else problems.push({ result: 'Failure', text: `${e.name}: not in the cache, and its source file ${e.def.source.location} does not exist: build or copy the tarball there (${e.def.file})` });
      continue;
    }
    problems.push(
      f.offline
        ? { result: 'Failure', text: `${e.name}: not in the cache and --offline: provision it before the window (run leapfrog with the same --cache-dir where ${e.def.source.location} is reachable, or copy the cache)` }
        : { result: 'Warning', text: `${e.name}: not in the cache; the run would have to fetch it from ${e.def.source.location}: provision it before the window, which may have no network` },
    );
  }
  const summary = `${plural(envs.length, 'env')} needed: ${cached} in the cache (verified by sha256 when unpacked)${local > 0 ? `, ${local} to unpack from local tarballs` : ''}${problems.length > 0 ? `, ${plural(problems.length, 'problem')}:` : '.'}`;
  return row('Envs', worst(problems), [summary, ...problems.map((p) => p.text)].join('\n'));
}

export function targetCheck(f: Pick<CheckFacts, 'reach' | 'targetDescription'>): CheckRow {
  if (!f.reach.ok) return row('Target', 'Failure', `${f.targetDescription}: ${f.reach.error}. The checks that need the target were not run.`);
  return row('Target', 'Success', `${f.targetDescription}: reachable, ${f.reach.server.flavour} ${f.reach.server.version}.`, f.reach.server);
}

/** The first step that expects a database: where the chain creates it. */
function creatingStep(chain: Chain, project: string, logical: string): StepDef | undefined {
  return chain.releases.flatMap((r) => r.steps).find((s) => s.project === project && s.expect[logical] !== undefined);
}

export function databasesCheck(chain: Chain, f: Pick<CheckFacts, 'databases' | 'target' | 'sqlite'>): CheckRow {
  // information_schema.SCHEMATA lists only the databases the account may use.
  const hidden = f.target.kind === 'mysql';
  const lines: string[] = [];
  const failures: string[] = [];
  for (const d of f.databases) {
    const started = chain.projects[d.project]!.start[d.logical] !== undefined;
    if (d.exists) lines.push(`${d.project} ${d.logical} (${d.name}): exists`);
    else if (started) failures.push(`${d.project} ${d.logical} (${d.name}): does not exist${hidden ? ' (or this account has no privilege on it)' : ''}, but the chain starts it at ${formatVersion(chain.projects[d.project]!.start[d.logical]!)}: check --db, or restore it`);
    else lines.push(`${d.project} ${d.logical} (${d.name}): not yet; created by ${creatingStep(chain, d.project, d.logical)?.id ?? 'the chain'}`);
  }
  // A rollback journal nobody holds open is what a writer that died mid-transaction
  // leaves (https://www.sqlite.org/lockingv3.html#hotjournals): the next
  // read-write open rolls it back. Harmless, but the DBA should know a crash happened.
  const holders = new Set((f.sqlite?.holders ?? []).map((h) => h.file));
  const journals = (f.sqlite?.files ?? []).filter((x) => x.journal && !holders.has(x.file));
  const warnings = journals.map((x) => `${x.file}-journal is left beside ${x.name}: a writer died mid-transaction; its changes are undone at the next read-write open (e.g. sqlite3 ${x.file} 'PRAGMA quick_check')`);
  const result: Result = failures.length > 0 ? 'Failure' : warnings.length > 0 ? 'Warning' : 'Success';
  return row('Databases', result, [...failures, ...warnings, ...lines].join('\n'), f.databases);
}

export interface PlanOutcome {
  plan: Plan | undefined;
  steps: PreparedStep[] | undefined;
  /** The planner's refusal, one line per database (ahead, behind, unknown version). */
  refused: readonly string[];
  error: string | undefined;
}

/** The planner and prepare(), as `plan` and `run` use them; a refusal becomes data instead of an exception. */
export function planOutcome(f: CheckFacts): PlanOutcome {
  if (!f.chain || !f.versions || !f.layout) return { plan: undefined, steps: undefined, refused: [], error: undefined };
  let p: Plan;
  try {
    p = makePlan({ chain: f.chain, versions: f.versions, neededCounts: f.neededCounts, ledgerDone: f.ledger.done, until: f.until });
  } catch (err) {
    if (err instanceof LeapfrogError && err.kind === 'refused') return { plan: undefined, steps: undefined, refused: err.details, error: undefined };
    if (err instanceof LeapfrogError) return { plan: undefined, steps: undefined, refused: [], error: [err.message, ...err.details].join('\n') };
    throw err;
  }
  try {
    const steps = prepare(f.chain, p, f.target, f.layout);
    // The config files too, in memory only: `run` renders them before its first
    // step, and a template mistake there would stop the window at minute one.
    for (const project of new Set(p.steps.map((s) => s.step.project))) {
      const def = f.chain.projects[project]!;
      for (const file of Object.keys(def.config)) renderConfig(f.chain, def, file, projectAddresses(f.chain, f.target, project));
    }
    return { plan: p, steps, refused: [], error: undefined };
  } catch (err) {
    if (!(err instanceof LeapfrogError)) throw err;
    return { plan: p, steps: undefined, refused: [], error: [err.message, ...err.details].join('\n') };
  }
}

export function versionsCheck(chain: Chain, f: Pick<CheckFacts, 'versions' | 'versionsError'>, po: PlanOutcome): CheckRow {
  if (!f.versions) return row('Versions', 'Failure', `Cannot read the versions: ${f.versionsError ?? 'unknown error'}`);
  const standing = Object.entries(f.versions).map(
    ([p, dbs]) => `${p}: ${Object.entries(dbs).map(([db, v]) => `${db} ${v.kind === 'absent' ? 'not yet created' : formatVersion(v)}`).join(', ')}`,
  );
  const data = Object.fromEntries(Object.entries(f.versions).map(([p, dbs]) => [p, Object.fromEntries(Object.entries(dbs).map(([db, v]) => [db, formatVersion(v)]))]));
  if (po.refused.length > 0) {
    return row('Versions', 'Failure', [`Chain ${chain.name} cannot start from here; \`leapfrog run\` would refuse:`, ...po.refused, ...standing].join('\n'), data);
  }
  const atEnd = po.plan !== undefined && po.plan.steps.length === 0 && po.plan.until === undefined;
  return row('Versions', 'Success', [...standing, atEnd ? `Every database is at the end of chain ${chain.name}.` : `Every version is known to chain ${chain.name} and none is ahead of its end.`].join('\n'), data);
}

export function planCheck(po: PlanOutcome): CheckRow | undefined {
  if (po.error) return row('Plan', 'Failure', po.error);
  if (!po.plan) return undefined; // refused: the Versions check says why
  const n = po.plan.steps.length;
  if (n === 0) return row('Plan', 'Success', 'Nothing to run.');
  return row('Plan', 'Success', `${plural(n, 'step')} over ${plural(po.plan.hops.length, 'hop')}: ${po.plan.hops.map((h) => `${h.project}@${h.release}`).join(', ')}. Listed below.`);
}

// ---- blockers --------------------------------------------------------------

export function findStep(chain: Chain, project: string, ref: string): StepDef | undefined {
  const steps = chain.releases.flatMap((r) => r.steps).filter((s) => s.project === project);
  return steps.find((s) => s.id === ref) ?? steps.find((s) => s.name === ref);
}

const stepLabel = (s: StepDef) => `${s.id}${s.name ? ` (${s.name})` : ''} in env ${s.env}`;

export function blockerCheck(chain: Chain, b: BlockerFact, plan: Plan | undefined): CheckRow {
  const name = `Blocker: ${b.project} ${b.name}`;
  const fixer = b.fixedBy === undefined ? undefined : findStep(chain, b.project, b.fixedBy);
  const planned = fixer !== undefined && plan !== undefined && plan.steps.some((p) => p.step.id === fixer.id);
  const data = { project: b.project, database: b.database, outcome: b.outcome, fixedBy: fixer?.id ?? b.fixedBy ?? null, planned };
  const noPlan = plan === undefined && fixer !== undefined;
  const unfixed = (): string => {
    if (b.fixedBy === undefined) return `Nothing in chain ${chain.name} fixes it: fix the data by hand, or add the step that does and name it in fixed-by.`;
    if (!fixer) {
      const ids = chain.releases.flatMap((r) => r.steps).filter((s) => s.project === b.project).map((s) => (s.name ? `${s.id} (${s.name})` : s.id));
      return `Its fixed-by "${b.fixedBy}" is not a step of chain ${chain.name} (${b.project} steps: ${ids.join(', ')}): nothing in the chain fixes it.`;
    }
    return `${stepLabel(fixer)} fixes it but is not in the plan (the target is past it, its needed-when query says 0, or --until stops before it): nothing that will run fixes it.`;
  };
  switch (b.outcome.kind) {
    case 'error':
      return row(name, 'Failure', `The query on ${b.dbName} failed: ${b.outcome.reason}. Fix it in the chain's blockers: (${chain.file}).`, data);
    case 'not-yet':
      return planned
        ? row(name, 'Success', `Cannot be counted yet (${b.outcome.reason}); ${stepLabel(fixer!)}, which fixes it, is in the plan.`, data)
        : row(name, 'Warning', `Cannot be counted yet (${b.outcome.reason}). If rows appear: ${b.message}. ${unfixed()}`, data);
    case 'count': {
      const n = b.outcome.count;
      if (n === 0) return row(name, 'Success', `0 rows on ${b.dbName}: nothing to fix.`, data);
      const head = `${plural(n, 'row')} on ${b.dbName}: ${b.message}.`;
      if (planned) return row(name, 'Warning', `${head} The plan fixes it: ${stepLabel(fixer!)} runs before the migration that refuses.`, data);
      // No plan (the planner refused, or versions could not be read): whether the fixing step runs is not known, and the reason is a Failure elsewhere.
      if (noPlan) return row(name, 'Warning', `${head} ${stepLabel(fixer!)} fixes it, if it runs: there is no plan to tell (see Versions and Plan).`, data);
      return row(name, 'Failure', `${head} ${unfixed()}`, data);
    }
  }
}

// ---- clients, transactions, engines, collations ------------------------------

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
    if (entries.length > 1) {
      mixed.push(`${p.name}: ${entries.map(([c, n]) => `${c} (${plural(n, 'table')}${n <= 3 ? `, e.g. ${examples[c]}` : ''})`).join(', ')}`);
    } else if (entries.length === 1) lines.push(`${p.name}: ${entries[0]![0]}`);
  }
  if (mixed.length > 0) {
    return row(
      name,
      'Warning',
      ['Mixed collations within a project: a migration adding a foreign key between tables of different charsets fails (errno 150), and joins across them cannot use indexes. Convert before the window (ALTER TABLE … CONVERT TO CHARACTER SET …):', ...mixed, ...lines].join('\n'),
      data,
    );
  }
  return row(name, 'Success', lines.length > 0 ? `One collation per project: ${lines.join('; ')}.` : 'No tables yet.', data);
}

// ---- free space, ledger ------------------------------------------------------

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

export function ledgerCheck(f: Pick<CheckFacts, 'ledger'>, stateDir: string): CheckRow {
  const name = 'Ledger';
  const l = f.ledger;
  if (l.error) return row(name, 'Failure', `${l.error}. Move the file away or use another --state-dir.`);
  if (!l.exists) return row(name, 'Success', `No ledger yet at ${l.file}: nothing has run from this state directory.`);
  if (l.unfinished.length === 0) return row(name, 'Success', `${l.file}: no unfinished step against this target.`);
  const lines: string[] = [];
  for (const s of l.unfinished) {
    if (s.alive) {
      lines.push(`Run ${s.runId} (chain ${s.chain}) is in progress: pid ${s.pid} on ${s.host} is running step ${s.stepId} since ${s.startedAt}. Wait for it to end, or stop it, before starting another.`);
    } else {
      lines.push(
        `Step ${s.stepId} of run ${s.runId} (chain ${s.chain}) started at ${s.startedAt} and never finished: its process died mid-step, so a database may be between versions.` +
          ` Read \`leapfrog ledger show ${s.runId} --state-dir ${stateDir}\`${s.logPath ? ` and its log ${s.logPath}` : ''}; then \`leapfrog run\` probes where each database stands and resumes from there.`,
      );
    }
  }
  return row(name, 'Failure', lines.join('\n'), l.unfinished);
}

// ---- estimate ------------------------------------------------------------

const FINISHED = new Set(['succeeded', 'skipped']);

/** Per planned hop: the step durations of the newest succeeded run (or rehearsal) of the chain that completed that hop. */
export function estimate(plan: Plan, history: readonly RunTiming[]): Estimate {
  const hops = plan.hops.map((h) => {
    for (const run of history) {
      const steps = run.steps.filter((s) => s.project === h.project && s.release === h.release);
      if (steps.length === 0 || !steps.every((s) => FINISHED.has(s.status))) continue;
      return { ...h, ms: steps.reduce((n, s) => n + (s.durationMs ?? 0), 0), fromRun: run.runId, from: run.label ?? `run ${run.runId}` };
    }
    return { ...h, ms: undefined, fromRun: undefined };
  });
  const knownMs = hops.reduce((n, h) => n + (h.ms ?? 0), 0);
  return { hops, totalMs: hops.every((h) => h.ms !== undefined) ? knownMs : undefined, knownMs };
}

// ---- all together ----------------------------------------------------------

export function evaluate(f: CheckFacts): CheckReport {
  const checks: CheckRow[] = [chainCheck(f)];
  const chain = f.chain;
  const base = { chain: chain?.name, target: f.targetDescription, versions: f.versions, plan: undefined, steps: undefined, estimate: undefined };
  if (!chain) {
    // Without a chain there is no plan, but the target and a crash in the ledger are still worth knowing.
    checks.push(targetCheck(f), ledgerCheck(f, f.storage.stateDir));
    return { ...base, checks, result: worst(checks) };
  }
  const po = f.reach.ok ? planOutcome(f) : undefined;
  const needed = po?.plan ? new Set(po.plan.steps.map((s) => s.step.env)) : undefined;
  checks.push(envsCheck(f, needed), targetCheck(f));
  if (f.reach.ok && po) {
    checks.push(databasesCheck(chain, f), versionsCheck(chain, f, po));
    const pc = planCheck(po);
    if (pc) checks.push(pc);
    for (const b of f.blockers) checks.push(blockerCheck(chain, b, po.plan));
    checks.push(clientsCheck(f), transactionsCheck(f), enginesCheck(f), collationsCheck(chain, f), freeSpaceCheck(f));
  }
  checks.push(ledgerCheck(f, f.storage.stateDir));
  return {
    ...base,
    checks,
    result: worst(checks),
    plan: po?.plan,
    steps: po?.steps,
    estimate: po?.plan ? estimate(po.plan, f.ledger.history) : undefined,
  };
}
