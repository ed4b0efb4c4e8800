import { prepare, type PreparedStep } from '../chain/argv.js';
import { plan as makePlan, type Plan } from '../chain/plan.js';
import { renderConfig } from '../chain/template.js';
import type { Chain, Version } from '../chain/types.js';
import { probeAll, probeNeeded, stepRowsNow, type StepRows } from '../database/probe.js';
import type { TargetSession } from '../database/session.js';
import { describePlacement } from '../database/placement.js';
import { LeapfrogError, type ErrorKind } from '../errors.js';
import type { LedgerReader, RunRow } from '../ledger/ledger.js';
import { describeDrift, findDrift, historyLost, survivorProblem, unfinishedRuns, type DeadRun, type Drift } from './history.js';
import { configRenderings, templatePlaces, type Layout } from './layout.js';
import { assessInFlight, blocking, partlyCreatedOptions, recoveryRefusal, type Recovery } from './recovery.js';

/**
 * The pre-flight: everything `plan`, `check-migrations`, `run` and
 * `rehearse` need to know before anything runs, read the same way for all
 * of them, and the verdict as data. It only reads: probes, needed-when
 * counts, the ledger (which may not exist), fingerprints for drift. `run`
 * calls it under the lock and turns its refusals into errors;
 * check-migrations turns them into Failures; `plan` prints them.
 */

type AllVersions = Record<string, Record<string, Version>>;

export interface PreflightOptions {
  until?: string | undefined;
  /** The operator vouches that an unfinished run on another host is dead. */
  resume?: boolean | undefined;
  /** Go on although a schema changed since its checkpoint (recorded by `run`). */
  acceptDrift?: boolean | undefined;
}

/** Why the chain must not run from here, and what to do: `kind` is the exit code's. */
export interface Refusal {
  kind: ErrorKind;
  /** What it is about: check-migrations files each under its check. */
  about: 'history' | 'versions' | 'drift' | 'recovery' | 'plan';
  message: string;
  details: readonly string[];
}

export interface Preflight {
  chain: Chain;
  target: string;
  /** As probed; undefined when they could not be read (a refusal says why). */
  versions: AllVersions | undefined;
  neededCounts: Readonly<Record<string, number>>;
  /** Per step of the planned hops whose time grows with rows (touches:, or a data step's needed-when), the rows now: what the estimate scales by and what a run records with each step. */
  stepRows?: Readonly<Record<string, StepRows>>;
  ledgerDone: ReadonlySet<string>;
  /** Steps a run died or was stopped in, not run since: a database may stand inside one. */
  inFlight: ReadonlySet<string>;
  lastRun: RunRow | undefined;
  /** Runs that never recorded their end, and what may be alive of them. */
  unfinished: readonly DeadRun[];
  /** Schema changes since the last checkpoint that no unfinished step explains ("changed by hand"). */
  drift: readonly Drift[];
  /** What in-flight sync steps left behind, judged against their evidence (recovery.ts). */
  recovery: readonly Recovery[];
  /** The databases are past the chain's start but the ledger knows nothing of them. */
  historyLost: boolean;
  plan: Plan | undefined;
  /** The plan's steps with their argv, as `run` will execute them. */
  steps: PreparedStep[] | undefined;
  refusals: Refusal[];
}

export interface PreflightContext {
  chain: Chain;
  layout: Layout;
  session: TargetSession;
  /** The ledger, if there is one: the pre-flight never creates it. */
  ledger: LedgerReader | undefined;
}

const asRefusal = (about: Refusal['about'], err: unknown): Refusal => {
  if (!(err instanceof LeapfrogError)) throw err;
  return { kind: err.kind, about, message: err.message, details: err.details };
};

export async function preflight(c: PreflightContext, o: PreflightOptions = {}): Promise<Preflight> {
  const { chain, session, ledger } = c;
  const target = describePlacement(session.placement);
  const refusals: Refusal[] = [];

  const unfinished = ledger ? unfinishedRuns(ledger, chain, target) : [];
  const alive = unfinished.flatMap((d) => survivorProblem(d, chain, o.resume ?? false) ?? []);
  if (alive.length > 0) refusals.push({ kind: 'refused', about: 'history', message: alive.length === 1 ? alive[0]! : 'earlier runs may still be alive; nothing was run:', details: alive.length === 1 ? [] : alive });

  let versions: AllVersions | undefined;
  try {
    versions = await probeAll(session, chain);
  } catch (err) {
    refusals.push(asRefusal('versions', err));
  }
  const neededCounts = versions ? await probeNeeded(session, chain) : {};
  const ledgerDone = ledger?.succeededSteps(chain.name, target) ?? new Set<string>();
  const inFlight = new Set((ledger?.inFlightSteps(chain.name, target) ?? []).map((s) => s.step_id));
  const recovery = versions ? await assessInFlight(ledger, chain, session, target, versions) : [];
  const blocked = recovery.filter(blocking);
  if (blocked.length > 0 && ledger) {
    // Never re-run a step over its own partial work; --accept-drift does not cover it (it is not drift).
    const r = recoveryRefusal(ledger, chain, c.layout, target, blocked);
    refusals.push({ kind: 'refused', about: 'recovery', message: r.message, details: r.details });
  }
  // A schema change an unfinished step explains is that step's work, not a change by hand.
  const explained = (d: Drift) => recovery.some((r) => r.project === d.project && r.database === d.database && r.verdict.kind !== 'not-started' && r.verdict.kind !== 'done');
  const drift = versions ? (await findDrift(ledger, chain, session, target, versions)).filter((d) => !explained(d)) : [];
  if (drift.length > 0 && !o.acceptDrift) {
    refusals.push({
      kind: 'refused',
      about: 'drift',
      message: `the schema of ${drift.length === 1 ? 'a database' : `${drift.length} databases`} changed since the last checkpoint although the version did not (changed by hand?); nothing was run. Look at the changes; run with --accept-drift to go on anyway (recorded in the ledger):`,
      details: drift.map(describeDrift),
    });
  }

  let plan: Plan | undefined;
  let steps: PreparedStep[] | undefined;
  if (versions) {
    try {
      plan = makePlan({ chain, versions, neededCounts, ledgerDone, inFlight, until: o.until });
    } catch (err) {
      const r = asRefusal(err instanceof LeapfrogError && err.kind === 'refused' ? 'versions' : 'plan', err);
      // A partly created database: name the restore point from before its first migration, when the ledger has one.
      const points = r.about === 'versions' && ledger ? partlyCreatedOptions(ledger, chain, c.layout, target, versions) : [];
      refusals.push(points.length > 0 ? { ...r, details: [...r.details, ...points] } : r);
    }
  }
  if (plan) {
    try {
      const places = templatePlaces(c.layout, chain, session);
      steps = prepare(chain, plan, places);
      // The config files too, in memory only: `run` renders them before its first
      // step, and a template mistake there would stop the window at minute one.
      for (const project of new Set(plan.steps.map((s) => s.step.project))) {
        const def = chain.projects[project]!;
        for (const { file, cell } of configRenderings(c.layout, chain, project)) renderConfig(chain, def, file, places.addresses(project), cell);
      }
    } catch (err) {
      steps = undefined;
      refusals.push(asRefusal('plan', err));
    }
  }

  let stepRows: Record<string, StepRows> = {};
  try {
    // Every step of the planned hops: the hop estimate sums the steps a rehearsal ran, and a data step it
    // ran may not be needed here (needed-when 0), which its rows say.
    const hops = new Set(plan?.hops.map((h) => `${h.project}@${h.release}`));
    if (plan) stepRows = await stepRowsNow(session, chain, chain.releases.flatMap((r) => r.steps).filter((s) => hops.has(`${s.project}@${s.release}`)), neededCounts);
  } catch {
    // Rows that cannot be counted leave the estimate unscaled; they are no reason to refuse a run.
  }

  return {
    chain,
    target,
    versions,
    neededCounts,
    stepRows,
    ledgerDone,
    inFlight,
    lastRun: ledger?.lastRun(chain.name, target),
    unfinished,
    drift,
    recovery,
    historyLost: versions !== undefined && historyLost(ledger, chain, target, versions),
    plan,
    steps,
    refusals,
  };
}

/** The refusals as one error, the first one's kind deciding the exit code. */
export function refusalError(refusals: readonly Refusal[]): LeapfrogError {
  if (refusals.length === 1) return new LeapfrogError(refusals[0]!.kind, refusals[0]!.message, { details: refusals[0]!.details });
  return new LeapfrogError(refusals[0]!.kind, `chain cannot run from here (${refusals.length} reasons); nothing was run:`, {
    details: refusals.flatMap((r) => [r.message, ...r.details.map((d) => `  ${d}`)]),
  });
}
