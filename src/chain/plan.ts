import { LeapfrogError } from '../errors.js';
import type { Chain, Expectation, ProjectDef, StepDef, Version } from './types.js';
import { compareToExpectation, formatVersion, isReached, orderKey } from './version.js';

/**
 * The planner: what the chain still has to do against one target, computed
 * from the chain, the probed versions and the ledger. Pure and synchronous:
 * everything it needs is read before it runs (see STYLE.md, "a pure planner
 * between I/O edges"), so it is unit-tested with plain objects.
 */

export interface PlanInputs {
  chain: Chain;
  /** project → logical database → version, as probed just now. */
  versions: Readonly<Record<string, Readonly<Record<string, Version>>>>;
  /** step id → the count its needed-when query returned just now (absent: could not be evaluated yet). */
  neededCounts: Readonly<Record<string, number>>;
  /** Ids of data steps the ledger recorded as succeeded against this target. */
  ledgerDone: ReadonlySet<string>;
  /** Stop after this release (inclusive). */
  until?: string | undefined;
  /**
   * Sync steps a crashed run was in the middle of. A database may stand at a
   * version between two of the chain's boundaries (an alembic revision inside
   * a hop); it is understood as "inside that step", not as unknown.
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
  versions: Readonly<Record<string, Version>>;
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

function projectSteps(chain: Chain, project: string): StepDef[] {
  return chain.releases.flatMap((r) => r.steps.filter((s) => s.project === project));
}

/** Non-numeric versions of a database, in the order the chain reaches them. */
export function versionOrder(chain: Chain, project: ProjectDef, db: string): string[] {
  const order: string[] = [];
  const push = (e: Expectation | undefined) => {
    const k = e && orderKey(e);
    if (k !== undefined && !order.includes(k)) order.push(k);
  };
  push(project.start[db]);
  for (const s of projectSteps(chain, project.name)) push(s.expect[db]);
  return order;
}

/**
 * The order of a database's versions, with the version it stands at inserted
 * just before the expectation of the in-flight step that was moving it there.
 */
function orderFor(chain: Chain, project: ProjectDef, db: string, current: Version | undefined, inFlight: ReadonlySet<string> | undefined): string[] {
  const order = versionOrder(chain, project, db);
  const key = current?.kind === 'heads' ? current.heads.join(',') : current?.kind === 'text' ? current.value : undefined;
  if (key === undefined || order.includes(key) || !inFlight) return order;
  const step = projectSteps(chain, project.name).find((s) => inFlight.has(s.id) && s.kind === 'sync' && s.expect[db]);
  const target = step && orderKey(step.expect[db]!);
  const at = target === undefined ? -1 : order.indexOf(target);
  if (at >= 0) order.splice(at, 0, key);
  return order;
}

/** Problems with the target's standing, phrased for the operator; empty when the chain can move from here. */
function standingProblems(chain: Chain, project: ProjectDef, versions: Readonly<Record<string, Version>>, inFlight?: ReadonlySet<string>): string[] {
  const problems: string[] = [];
  for (const [db, dbName] of Object.entries(project.databases)) {
    const where = `project ${project.name}, database ${db} (${dbName})`;
    const v = versions[db] ?? { kind: 'absent' };
    const start = project.start[db];
    const expects = projectSteps(chain, project.name)
      .map((s) => s.expect[db])
      .filter((e): e is Expectation => e !== undefined);
    const order = orderFor(chain, project, db, v, inFlight);
    if (v.kind === 'absent') {
      if (start) problems.push(`${where}: does not exist or has no version table, but the chain starts it at ${formatVersion(start)}. Check --db, or restore the database.`);
      continue;
    }
    const last = expects[expects.length - 1] ?? start;
    if (!last) continue;
    const vsEnd = compareToExpectation(v, last, order);
    const vsStart = start ? compareToExpectation(v, start, order) : 'above';
    if (vsEnd === 'unknown' || vsStart === 'unknown') {
      const known = [start, ...expects].filter((e): e is Expectation => e !== undefined).map(formatVersion);
      problems.push(`${where}: is at version ${formatVersion(v)}, which chain ${chain.name} does not know (it knows ${[...new Set(known)].join(', ')}). Was it migrated by another tool or chain?`);
    } else if (vsEnd === 'above') {
      problems.push(`${where}: is at version ${formatVersion(v)}, ahead of the chain's end (${formatVersion(last)}). Nothing here can move it; use a chain that starts at or beyond it.`);
    } else if (vsStart === 'below') {
      problems.push(`${where}: is at version ${formatVersion(v)}, behind the chain's start (${formatVersion(start!)}). Upgrade it to the chain's first release first.`);
    } else if (v.kind === 'heads' || v.kind === 'text') {
      const key = v.kind === 'heads' ? v.heads.join(',') : v.value;
      if (!order.includes(key)) problems.push(`${where}: is at version ${key}, which chain ${chain.name} does not know (it knows ${order.join(', ')}).`);
    }
  }
  return problems;
}

function planProject(inputs: PlanInputs, project: ProjectDef, releaseIndex: Map<string, number>, untilIndex: number): ProjectPlan {
  const { chain, neededCounts, ledgerDone } = inputs;
  const versions = inputs.versions[project.name] ?? {};
  const steps = projectSteps(chain, project.name);
  const orders = Object.fromEntries(Object.keys(project.databases).map((db) => [db, orderFor(chain, project, db, versions[db], inputs.inFlight)]));
  const reached = (s: StepDef) => Object.entries(s.expect).every(([db, e]) => isReached(versions[db] ?? { kind: 'absent' }, e, orders[db] ?? []));

  // The last sync step whose every expectation is met: the project stands there.
  let k = -1;
  steps.forEach((s, i) => {
    if (s.kind === 'sync' && reached(s)) k = i;
  });
  const positionRelease = k >= 0 ? steps[k]!.release : undefined;

  const planned: PlannedStep[] = [];
  const skipped: SkippedStep[] = [];
  let untouched = true; // no step planned yet: probes taken now still describe the state each step will meet
  steps.forEach((s, i) => {
    const inPositionHop = positionRelease !== undefined && s.release === positionRelease;
    if (i <= k) {
      if (i === k || s.kind === 'sync') {
        skipped.push({ step: s, reason: `done: ${describeExpect(s)} reached` });
      } else {
        skipped.push({ step: s, reason: `passed: a later sync (${steps[k]!.id}) is done` });
      }
      return;
    }
    if ((releaseIndex.get(s.release) ?? 0) > untilIndex) return;
    if (s.kind === 'sync') {
      if (reached(s)) {
        skipped.push({ step: s, reason: `done: ${describeExpect(s)} reached` });
        return;
      }
      planned.push({ step: s, reason: untouched ? `${describeStanding(s, versions)} → ${describeExpect(s)}` : `→ ${describeExpect(s)}`, conditional: false });
      untouched = false;
      return;
    }
    if (s.kind === 'data') {
      const count = neededCounts[s.id];
      if (untouched && s.neededWhen && count === 0) {
        skipped.push({ step: s, reason: 'not needed: its needed-when query returns 0' });
        return;
      }
      if (untouched && !s.neededWhen && ledgerDone.has(s.id)) {
        skipped.push({ step: s, reason: 'done: the ledger recorded it succeeded' });
        return;
      }
      const reason = untouched && count !== undefined ? `needed: its needed-when query returns ${count}` : s.neededWhen ? 'runs while its needed-when query returns more than 0' : 'data migration of this hop';
      planned.push({ step: s, reason, conditional: !untouched && s.neededWhen !== undefined });
      untouched = false;
      return;
    }
    // check: worth running only when its hop still has work, or comes after planned work.
    const hopHasWork = !untouched || steps.some((o, j) => j > i && o.release === s.release && !(o.kind === 'sync' && reached(o)));
    if (!hopHasWork && inPositionHop) {
      skipped.push({ step: s, reason: 'hop already complete' });
      return;
    }
    planned.push({ step: s, reason: 'check', conditional: false });
    untouched = false;
  });

  // A hop counts as the project's standing only when nothing of it is left to run.
  let at = positionRelease;
  if (at !== undefined && planned.some((p) => p.step.release === at)) {
    const idx = releaseIndex.get(at)!;
    const earlier = steps.filter((s) => (releaseIndex.get(s.release) ?? 0) < idx);
    at = earlier.length > 0 ? earlier[earlier.length - 1]!.release : undefined;
  }
  return { project: project.name, at, versions, steps: planned, skipped };
}

function describeExpect(s: StepDef): string {
  return Object.entries(s.expect)
    .map(([db, e]) => `${db} ${formatVersion(e)}`)
    .join(', ');
}

function describeStanding(s: StepDef, versions: Readonly<Record<string, Version>>): string {
  return Object.keys(s.expect)
    .map((db) => `${db} at ${formatVersion(versions[db] ?? { kind: 'absent' })}`)
    .join(', ');
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
