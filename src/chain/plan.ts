import { LeapfrogError } from '../errors.js';
import type { Chain, ProjectDef, StepDef, Version } from './types.js';
import { formatVersion, isReached } from './version.js';
import { describeTables, plannedVersions, projectSteps, standing, standingProblems, type Versions } from './position.js';

export { versionOrder } from './position.js';

/**
 * The planner: what the chain still has to do against one target, computed
 * from the chain, the probed versions and the ledger. Pure and synchronous:
 * everything it needs is read before it runs (see STYLE.md, "a pure planner
 * between I/O edges"), so it is unit-tested with plain objects and with
 * generated chains (test/plan-properties.test.ts).
 *
 * Each project stands at the earliest point of its steps that explains its
 * probed versions (position.ts). Before it, everything is done: a later
 * sync that moved a database could not have run otherwise. From it on, each
 * step is judged on its own: a sync is done only when every database it
 * declares is at or past its expectation, by probe; a data step only when
 * its needed-when query returns 0 or the ledger recorded it, and only while
 * nothing before it is planned (its answer may change once that runs).
 */

export interface PlanInputs {
  chain: Chain;
  /** project → logical database → version, as probed just now. */
  versions: Readonly<Record<string, Versions>>;
  /** step id → the count its needed-when query returned just now (absent: could not be evaluated yet). */
  neededCounts: Readonly<Record<string, number>>;
  /** Ids of data steps the ledger recorded as succeeded against this target (and not undone by a rollback). */
  ledgerDone: ReadonlySet<string>;
  /** Stop after this release (inclusive). */
  until?: string | undefined;
  /**
   * Sync steps a run was in the middle of when it died or was stopped. A
   * database may stand at a version between two of the chain's boundaries
   * (an alembic revision inside a hop); it is understood as "inside that
   * step", not as unknown.
   */
  inFlight?: ReadonlySet<string> | undefined;
}

export interface PlannedStep {
  step: StepDef;
  /** Why it runs, for people reading the plan. */
  reason: string;
  /** A data step whose probe is re-checked just before it runs (earlier steps may change its answer). */
  conditional: boolean;
}

export interface SkippedStep {
  step: StepDef;
  reason: string;
}

export interface ProjectPlan {
  project: string;
  /** The last release whose hop is complete on the target, or undefined at the chain's start. */
  at: string | undefined;
  versions: Versions;
  steps: readonly PlannedStep[];
  skipped: readonly SkippedStep[];
}

export interface Plan {
  chain: string;
  until: string | undefined;
  projects: readonly ProjectPlan[];
  /** Every planned step, in chain order (release, then position in the release). */
  steps: readonly PlannedStep[];
  /** The hops (`project@release`) the plan touches, in chain order. */
  hops: readonly { project: string; release: string }[];
}

const absent: Version = { kind: 'absent' };

function describeExpect(s: StepDef): string {
  return Object.entries(s.expect)
    .map(([db, e]) => `${db} ${formatVersion(e)}`)
    .join(', ');
}

function describeStanding(s: StepDef, versions: Versions): string {
  return Object.keys(s.expect)
    .map((db) => `${db} at ${formatVersion(versions[db] ?? absent)}`)
    .join(', ');
}

/**
 * What the runner creates before this sync (chain `create:`): the declared
 * databases it moves that are absent now and that no earlier planned step
 * creates. Said in the step's reason, so plan and check-migrations show it.
 */
function creating(project: ProjectDef, s: StepDef, versions: Versions, created: Set<string>): string {
  const names = Object.keys(s.expect).filter((db) => project.create?.[db] !== undefined && (versions[db] ?? absent).kind === 'absent' && !created.has(db));
  for (const db of names) created.add(db);
  if (names.length === 0) return '';
  return `; creates ${names.map((db) => {
    const spec = project.create![db]!;
    const words = [spec.charset && `CHARACTER SET ${spec.charset}`, spec.collation && `COLLATE ${spec.collation}`].filter(Boolean).join(' ');
    return `${project.databases[db]}${words ? ` (${words})` : ''}`;
  }).join(', ')} first, if missing`;
}

/** What a sync runs again over (chain `partial: rerun`): its databases that are partly created now. */
function rerunning(project: ProjectDef, s: StepDef, probed: Versions): string {
  const dbs = Object.keys(s.expect).filter((db) => probed[db]?.kind === 'partial' && project.partial?.[db] === 'rerun');
  return dbs
    .map((db) => {
      const v = probed[db] as Extract<Version, { kind: 'partial' }>;
      return `; ${db} is partly created (${describeTables(v.tables)}, no version): the chain declares partial: rerun, so its first migration runs again over them`;
    })
    .join('');
}

function planProject(inputs: PlanInputs, project: ProjectDef, releaseIndex: ReadonlyMap<string, number>, untilIndex: number): ProjectPlan {
  const { chain, neededCounts, ledgerDone } = inputs;
  const probed = inputs.versions[project.name] ?? {};
  const versions = plannedVersions(project, probed);
  const steps = projectSteps(chain, project.name);
  const { positions, orders } = standing(chain, project, versions, inputs.inFlight);
  const position = positions[0] ?? 0; // plan() refused when no position explains the versions
  const reached = (s: StepDef) => Object.entries(s.expect).every(([db, e]) => isReached(versions[db] ?? absent, e, orders[db] ?? []));
  // The sync that puts the databases past the steps before the position (it may be the one at it, part-way).
  const moving = [...steps.slice(0, position + 1)].reverse().find((s) => s.kind === 'sync');

  // Syncs and data steps first: they are what changes the databases.
  const decision = new Map<StepDef, { planned: true; reason: string; conditional: boolean } | { planned: false; reason: string }>();
  let untouched = true; // nothing planned yet: probes taken now still describe the state each step will meet
  const created = new Set<string>();
  steps.forEach((s, i) => {
    if (i < position) {
      decision.set(s, { planned: false, reason: s.kind === 'sync' ? `done: ${describeExpect(s)} reached` : `passed: a later sync (${moving?.id}) moved the databases past it` });
    } else if (s.kind === 'sync') {
      if (reached(s)) decision.set(s, { planned: false, reason: `done: ${describeExpect(s)} reached` });
      else {
        const creates = creating(project, s, probed, created) + rerunning(project, s, probed);
        decision.set(s, { planned: true, reason: `${untouched ? `${describeStanding(s, probed)} → ${describeExpect(s)}` : `→ ${describeExpect(s)}`}${creates}`, conditional: false });
        untouched = false;
      }
    } else if (s.kind === 'data') {
      const count = neededCounts[s.id];
      if (untouched && s.neededWhen && count === 0) decision.set(s, { planned: false, reason: 'not needed: its needed-when query returns 0' });
      else if (untouched && !s.neededWhen && ledgerDone.has(s.id)) decision.set(s, { planned: false, reason: 'done: the ledger recorded it succeeded' });
      else {
        const reason = untouched && count !== undefined ? `needed: its needed-when query returns ${count}` : s.neededWhen ? 'runs while its needed-when query returns more than 0' : 'data migration of this hop';
        decision.set(s, { planned: true, reason, conditional: !untouched && s.neededWhen !== undefined });
        untouched = false;
      }
    }
  });
  // A check changes nothing: it runs when its hop has work to check, or, alone in
  // its hop, until the ledger has recorded it succeeded.
  steps.forEach((s, i) => {
    if (s.kind !== 'check') return;
    if (i < position) return decision.set(s, { planned: false, reason: `passed: a later sync (${moving?.id}) moved the databases past it` });
    const hop = steps.filter((o) => o.release === s.release && o.kind !== 'check');
    const work = hop.some((o) => decision.get(o)!.planned);
    if (work || (hop.length === 0 && !ledgerDone.has(s.id))) decision.set(s, { planned: true, reason: 'check', conditional: false });
    else decision.set(s, { planned: false, reason: hop.length === 0 ? 'done: the ledger recorded it succeeded' : 'hop already complete' });
  });

  const planned: PlannedStep[] = [];
  const skipped: SkippedStep[] = [];
  let firstOpen = steps.length; // the first step still to run, within --until or not
  steps.forEach((s, i) => {
    const d = decision.get(s)!;
    if (!d.planned) return skipped.push({ step: s, reason: d.reason });
    firstOpen = Math.min(firstOpen, i);
    if ((releaseIndex.get(s.release) ?? 0) <= untilIndex) planned.push({ step: s, reason: d.reason, conditional: d.conditional });
  });

  // The project stands at the last release all of whose steps come before the first open one.
  let at: string | undefined;
  for (const r of chain.releases) {
    const mine = steps.flatMap((s, i) => (s.release === r.release ? [i] : []));
    if (mine.length === 0) continue;
    if (mine.some((i) => i >= firstOpen)) break;
    at = r.release;
  }
  return { project: project.name, at, versions: probed, steps: planned, skipped };
}

export function plan(inputs: PlanInputs): Plan {
  const { chain } = inputs;
  const releaseIndex = new Map(chain.releases.map((r, i) => [r.release, i]));
  let untilIndex = chain.releases.length - 1;
  if (inputs.until !== undefined) {
    const i = releaseIndex.get(inputs.until);
    if (i === undefined) {
      throw new LeapfrogError('input', `--until ${inputs.until}: chain ${chain.name} has no such release; its releases are ${chain.releases.map((r) => r.release).join(', ')}`);
    }
    untilIndex = i;
  }

  const problems = Object.values(chain.projects).flatMap((p) => standingProblems(chain, p, inputs.versions[p.name] ?? {}, inputs.inFlight));
  if (problems.length > 0) {
    throw new LeapfrogError('refused', `the target is not where chain ${chain.name} can start from; nothing was run:`, { details: problems });
  }

  const projects = Object.values(chain.projects).map((p) => planProject(inputs, p, releaseIndex, untilIndex));
  const chainOrder = new Map(chain.releases.flatMap((r) => r.steps).map((s, i) => [s.id, i]));
  const steps = projects.flatMap((p) => p.steps).sort((a, b) => chainOrder.get(a.step.id)! - chainOrder.get(b.step.id)!);
  const hops: { project: string; release: string }[] = [];
  for (const s of steps) {
    if (!hops.some((h) => h.project === s.step.project && h.release === s.step.release)) hops.push({ project: s.step.project, release: s.step.release });
  }
  return { chain: chain.name, until: inputs.until, projects, steps, hops };
}
