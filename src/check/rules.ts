import type { Plan } from '../chain/plan.js';
import type { Chain, StepDef } from '../chain/types.js';
import { formatVersion } from '../chain/version.js';
import type { Preflight } from '../core/preflight.js';
import { describeDrift } from '../core/history.js';
import { describeRecovery } from '../core/recovery.js';
import { hint } from '../core/layout.js';
import { stateFlags } from '../state-dir.js';
import type { BlockerFact, CheckFacts, CheckRow, Result } from './facts.js';
export { batchesCheck } from './rules-batches.js';

/**
 * The checks of the chain, its envs, the target's databases and versions,
 * the plan, blockers, drift and the ledger: pure functions from facts to
 * rows. Versions, plan, drift and the ledger's dead runs come from the one
 * pre-flight `run` takes (src/core/preflight.ts), so this report and `run`
 * can never disagree about them.
 */

const RANK: Record<Result, number> = { Success: 0, Warning: 1, Failure: 2 };
const worst = (rows: readonly { result: Result }[]): Result => rows.reduce<Result>((w, r) => (RANK[r.result] > RANK[w] ? r.result : w), 'Success');
export const row = (check: string, result: Result, details: string, data?: unknown): CheckRow => ({ check, result, details, ...(data === undefined ? {} : { data }) });
export const plural = (n: number, word: string, many = `${word}s`) => `${n} ${n === 1 ? word : many}`;

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
export function envsCheck(f: Pick<CheckFacts, 'envs' | 'offline' | 'sandbox'>, needed: ReadonlySet<string> | undefined): CheckRow {
  const envs = f.envs.filter((e) => needed === undefined || needed.has(e.name));
  if (envs.length === 0) return row('Envs', 'Success', 'No env is needed: nothing to run.');
  const problems: { result: Result; text: string }[] = [];
  const rootfs = envs.filter((e) => e.def?.kind === 'rootfs').map((e) => e.name);
  if (rootfs.length > 0 && f.sandbox && !f.sandbox.ok) {
    problems.push({ result: 'Failure', text: `${rootfs.join(', ')}: ${rootfs.length === 1 ? 'a rootfs env, whose steps run' : 'rootfs envs, whose steps run'} under bubblewrap, but ${f.sandbox.why}` });
  }
  let cached = 0;
  let local = 0;
  for (const e of envs) {
    if (!e.def) {
      problems.push({ result: 'Failure', text: `${e.name}: ${e.error ?? 'cannot be loaded'}` });
      continue;
    }
    if (e.cached && e.changed.length > 0) {
      const shown = e.changed.slice(0, 10);
      problems.push({
        result: 'Failure',
        text: [
          `${e.name}: changed since it was unpacked (${e.checkedBy === 'hash' ? 'every file hashed' : 'sizes, modes and mtimes'}); \`leapfrog run\` refuses it. Unpack it again from its tarball: \`${e.repair}\`. What changed:`,
          ...shown.map((c) => `  ${c}`),
          ...(e.changed.length > shown.length ? [`  … and ${e.changed.length - shown.length} more`] : []),
        ].join('\n'),
      });
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
  const summary = `${plural(envs.length, 'env')} needed: ${cached} in the cache and intact (${envs[0]?.checkedBy === 'stat' ? 'sizes, modes and mtimes checked' : 'every file hashed'} against the manifest written when unpacked)${local > 0 ? `, ${local} to unpack from local tarballs` : ''}${problems.length > 0 ? `, ${plural(problems.length, 'problem')}:` : '.'}`;
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
  const hidden = f.target.default.kind === 'mysql';
  const lines: string[] = [];
  const failures: string[] = [];
  const unmappedWarnings: string[] = [];
  // A database whose server the command line did not give (no --db NAME=URL) is looked for on the default one.
  const unmapped = new Map(Object.entries(f.target.unmapped ?? {}).flatMap(([server, dbs]) => dbs.map((db) => [db, server] as const)));
  for (const d of f.databases) {
    const started = chain.projects[d.project]!.start[d.logical] !== undefined;
    const server = unmapped.get(d.name);
    const onDefault = server === undefined ? '' : ` on the default server (the chain puts it on server ${server}, which the command line does not give: --db ${server}=URL)`;
    if (d.exists) lines.push(`${d.project} ${d.logical} (${d.name}): exists${onDefault}`);
    else if (started) failures.push(`${d.project} ${d.logical} (${d.name}): does not exist${onDefault}${hidden ? ' (or this account has no privilege on it)' : ''}, but the chain starts it at ${formatVersion(chain.projects[d.project]!.start[d.logical]!)}: check --db, or restore it`);
    else if (server !== undefined) unmappedWarnings.push(`${d.project} ${d.logical} (${d.name}): not yet${onDefault}: ${creatingStep(chain, d.project, d.logical)?.id ?? 'the chain'} would create it there; if server ${server} is elsewhere, give --db ${server}=URL`);
    else lines.push(`${d.project} ${d.logical} (${d.name}): not yet; created by ${creatingStep(chain, d.project, d.logical)?.id ?? 'the chain'}`);
  }
  // A rollback journal nobody holds open is what a writer that died mid-transaction
  // leaves (https://www.sqlite.org/lockingv3.html#hotjournals): the next
  // read-write open rolls it back. Harmless, but the DBA should know a crash happened.
  const holders = new Set((f.sqlite?.holders ?? []).map((h) => h.file));
  const journals = (f.sqlite?.files ?? []).filter((x) => x.journal && !holders.has(x.file));
  const warnings = [...unmappedWarnings, ...journals.map((x) => `${x.file}-journal is left beside ${x.name}: a writer died mid-transaction; its changes are undone at the next read-write open (e.g. sqlite3 ${x.file} 'PRAGMA quick_check')`)];
  const result: Result = failures.length > 0 ? 'Failure' : warnings.length > 0 ? 'Warning' : 'Success';
  return row('Databases', result, [...failures, ...warnings, ...lines].join('\n'), f.databases);
}

export function versionsCheck(chain: Chain, pre: Preflight): CheckRow {
  const refused = pre.refusals.filter((r) => r.about === 'versions');
  if (!pre.versions) return row('Versions', 'Failure', `Cannot read the versions: ${refused.map((r) => [r.message, ...r.details].join(' ')).join('; ') || 'unknown error'}`);
  const standing = Object.entries(pre.versions).map(
    ([p, dbs]) => `${p}: ${Object.entries(dbs).map(([db, v]) => `${db} ${v.kind === 'absent' ? 'not yet created' : formatVersion(v)}`).join(', ')}`,
  );
  const data = Object.fromEntries(Object.entries(pre.versions).map(([p, dbs]) => [p, Object.fromEntries(Object.entries(dbs).map(([db, v]) => [db, formatVersion(v)]))]));
  if (refused.length > 0) {
    return row('Versions', 'Failure', [`Chain ${chain.name} cannot start from here; \`leapfrog run\` would refuse:`, ...refused.flatMap((r) => r.details), ...standing].join('\n'), data);
  }
  const blockedIds = new Set(pre.recovery.filter((r) => pre.refusals.some((x) => x.about === 'recovery') && r.verdict.kind !== 'done' && r.verdict.kind !== 'not-started').map((r) => r.step.step_id));
  const inside = [...pre.inFlight].filter((id) => !blockedIds.has(id)).filter((id) => chain.releases.some((r) => r.steps.some((s) => s.id === id && s.kind === 'sync')));
  const atEnd = pre.plan !== undefined && pre.plan.steps.length === 0 && pre.plan.until === undefined;
  return row(
    'Versions',
    'Success',
    [
      ...standing,
      ...(inside.length > 0 ? [`A run stopped inside ${inside.join(', ')}: a database may stand part-way there; \`leapfrog run\` resumes it.`] : []),
      atEnd ? `Every database is at the end of chain ${chain.name}.` : `Every version is known to chain ${chain.name} and none is ahead of its end.`,
    ].join('\n'),
    data,
  );
}

export function planCheck(pre: Preflight): CheckRow | undefined {
  const problem = pre.refusals.find((r) => r.about === 'plan');
  if (problem) return row('Plan', 'Failure', [problem.message, ...problem.details].join('\n'));
  if (!pre.plan) return undefined; // refused: the Versions check says why
  const n = pre.plan.steps.length;
  if (n === 0) return row('Plan', 'Success', 'Nothing to run.');
  return row('Plan', 'Success', `${plural(n, 'step')} over ${plural(pre.plan.hops.length, 'hop')}: ${pre.plan.hops.map((h) => `${h.project}@${h.release}`).join(', ')}. Listed below.`);
}

/**
 * The step a blocker's fixed-by names. A per-cell step is named once for all
 * its cells (by its name, or its id without `.CELL`): the copy for the
 * blocker's database when that is one of its cells, else its first.
 */
export function findStep(chain: Chain, project: string, ref: string, database?: string): StepDef | undefined {
  const steps = chain.releases.flatMap((r) => r.steps).filter((s) => s.project === project);
  const byId = steps.find((s) => s.id === ref);
  if (byId) return byId;
  const named = steps.filter((s) => s.name === ref || (s.cell !== undefined && s.id === `${ref}.${s.cell}`));
  return named.find((s) => s.cell !== undefined && s.cell === database) ?? named[0];
}

const stepLabel = (s: StepDef) => `${s.id}${s.name ? ` (${s.name})` : ''} in env ${s.env}`;

export function blockerCheck(chain: Chain, b: BlockerFact, plan: Plan | undefined): CheckRow {
  const name = `Blocker: ${b.project} ${b.name}`;
  const fixer = b.fixedBy === undefined ? undefined : findStep(chain, b.project, b.fixedBy, b.database);
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
      // The plan's own work is no Warning: `check-migrations && run` must go on for a
      // healthy cloud, as `nova-status upgrade check` passes one whose data the
      // upgrade migrates. Whether the step can move that many rows is Data batches'.
      if (planned) return row(name, 'Success', `${head} The plan fixes these ${plural(n, 'row')}: ${stepLabel(fixer!)} runs before the migration that refuses.`, data);
      // No plan (the planner refused, or versions could not be read): whether the fixing step runs is not known, and the reason is a Failure elsewhere.
      if (noPlan) return row(name, 'Warning', `${head} ${stepLabel(fixer!)} fixes it, if it runs: there is no plan to tell (see Versions and Plan).`, data);
      return row(name, 'Failure', `${head} ${unfixed()}`, data);
    }
  }
}


/** A schema changed since its checkpoint at the same version: `run` refuses it unless --accept-drift. */
export function driftCheck(pre: Preflight): CheckRow {
  if (pre.drift.length === 0) return row('Drift', 'Success', 'No schema changed since its last checkpoint (or no checkpoint yet).');
  return row(
    'Drift',
    'Failure',
    [`${plural(pre.drift.length, 'database')} changed since the last checkpoint although the version did not (changed by hand?); \`leapfrog run\` refuses unless --accept-drift:`, ...pre.drift.map(describeDrift)].join('\n'),
    pre.drift,
  );
}

/** What a run that died inside a sync step left behind, judged against the step's evidence (core/recovery.ts). */
export function recoveryCheck(pre: Preflight): CheckRow | undefined {
  const refused = pre.refusals.find((r) => r.about === 'recovery');
  if (refused) return row('Crash recovery', 'Failure', [refused.message, ...refused.details].join('\n'), pre.recovery.map((r) => ({ step: r.step.step_id, run: r.step.run_id, project: r.project, database: r.database, verdict: r.verdict })));
  const seen = pre.recovery.filter((r) => r.verdict.kind !== 'done');
  if (seen.length === 0) return undefined;
  return row('Crash recovery', 'Warning', seen.map(describeRecovery).join('\n'), seen.map((r) => ({ step: r.step.step_id, run: r.step.run_id, project: r.project, database: r.database, verdict: r.verdict })));
}

/** Runs that died, or are still running, against this target; the ledger's own health. */
export function ledgerCheck(f: Pick<CheckFacts, 'ledger' | 'preflight' | 'storage' | 'layout'>): CheckRow {
  const name = 'Ledger';
  const l = f.ledger;
  if (l.error) return row(name, 'Failure', `${l.error}. Move the file away or use another --state-dir.`);
  if (!l.exists) return row(name, 'Success', `No ledger yet at ${l.file}: nothing has run from this state directory.`);
  const runs = f.preflight?.unfinished ?? [];
  const lines: { result: Result; text: string }[] = [];
  // Hints carry the flags that reach this state (and chain and target) again, wherever they are pasted.
  const places = f.layout ?? { targetFlags: [], stateFlags: stateFlags(f.storage.stateDir), cacheFlags: [] };
  for (const { run, steps, survivor } of runs) {
    const doing = steps.length > 0 ? `step ${steps.map((s) => s.step_id).join(', ')}` : 'no step';
    const read = `Read \`${hint(places, ['ledger', 'show', String(run.id)], false)}\`${steps[0]?.log_path ? ` and its log ${steps[0].log_path}` : ''}`;
    if (survivor.kind === 'running') lines.push({ result: 'Failure', text: `Run ${run.id} (chain ${run.chain}) is in progress: pid ${run.pid} on ${run.host}, ${doing}, since ${run.started_at}. Wait for it to end, or stop it, before starting another.` });
    else if (survivor.kind === 'step') lines.push({ result: 'Failure', text: `Run ${run.id} died, but its step ${survivor.step.step_id} still runs as process group ${survivor.pgid}: \`leapfrog run\` refuses until it ends (--wait-lock waits for it; or kill -TERM -${survivor.pgid}).` });
    else if (survivor.kind === 'remote') lines.push({ result: 'Failure', text: `Run ${run.id} started on host ${run.host} (pid ${run.pid}, ${run.started_at}) and never finished; this host cannot tell whether it is alive: \`${hint(places, ['run', '--resume'])}\` if it is dead. ${read}.` });
    else lines.push({ result: 'Warning', text: `Run ${run.id} (chain ${run.chain}) died during ${doing} (started ${steps[0]?.started_at ?? run.started_at}): a database may be between versions. ${read}; then \`${hint(places, ['run'])}\` marks it interrupted and resumes from where the databases stand.` });
  }
  if (f.preflight?.historyLost) lines.push({ result: 'Warning', text: 'No history of this chain on this target in the ledger, but its databases are past the chain\'s start: the plan is derived from their versions alone; data steps without a needed-when query will run again.' });
  if (lines.length === 0) return row(name, 'Success', `${l.file}: no unfinished run against this target.`);
  return row(name, worst(lines), lines.map((x) => x.text).join('\n'), runs.map((d) => ({ run: d.run.id, status: d.run.status, host: d.run.host, pid: d.run.pid, steps: d.steps.map((s) => s.step_id), survivor: d.survivor.kind })));
}
