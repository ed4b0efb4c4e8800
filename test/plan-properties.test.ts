import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { plan, type Plan } from '../src/chain/plan.js';
import type { Chain, Expectation, ProjectDef, StepDef, Version } from '../src/chain/types.js';
import { formatVersion } from '../src/chain/version.js';
import { LeapfrogError } from '../src/errors.js';

/**
 * Properties of the planner over generated chains (STYLE.md 15): what the
 * operator relies on. Chains of 1-4 projects with 1-4 databases each
 * (sqlalchemy-migrate numbers, alembic revisions, two-head alembic), some
 * created mid-chain, steps of a release in any order, syncs that move
 * nothing (nova zed's api_db sync). States are reached by a simulated
 * toolchain running a prefix of each project's steps, possibly stopped
 * inside a sync (some databases moved, one part-way). From any such state:
 * executing the plan reaches the chain's end, no needed step is skipped, no
 * done step is planned, and planning again gives nothing.
 */

type Kind = 'num' | 'alembic' | 'two-heads';
const RUNS = 600;

interface World {
  versions: Record<string, Record<string, Version>>;
  dataDone: Set<string>;
  ledger: Set<string>;
  inFlight: Set<string>;
}

interface Generated {
  chain: Chain;
  /** Per project, a position and whether the step there stopped part-way, and how. */
  picks: Record<string, { position: number; partial: number[] | undefined }>;
}

const absent: Version = { kind: 'absent' };

function expectation(kind: Kind, db: string, n: number): Expectation {
  if (kind === 'num') return { kind: 'number', value: 100 + n * 7 };
  if (kind === 'alembic') return { kind: 'heads', heads: [`${db}_r${n}`] };
  return { kind: 'heads', heads: [`${db}_r${n}a`, `${db}_r${n}b`] };
}

/** A version part of the way from `from` (absent when undefined) to `to`. */
function partway(kind: Kind, db: string, from: Expectation | undefined, to: Expectation, pick: number): Version {
  if (kind === 'num') {
    const lo = from?.kind === 'number' ? from.value : 0;
    const hi = (to as { value: number }).value;
    return { kind: 'number', value: lo + 1 + (pick % Math.max(1, hi - lo - 1)) };
  }
  return { kind: 'heads', heads: [`${db}_mid${pick}`] };
}

const chainArb = fc
  .record({
    releases: fc.integer({ min: 1, max: 5 }),
    projects: fc.array(
      fc.record({
        dbs: fc.array(fc.record({ kind: fc.constantFrom<Kind>('num', 'alembic', 'two-heads'), started: fc.boolean() }), { minLength: 1, maxLength: 4 }),
        // Per release, the steps: a sync of some databases, a data step, a check.
        hops: fc.array(
          fc.array(
            fc.oneof(
              fc.record({ t: fc.constant('sync' as const), dbs: fc.array(fc.nat(3), { minLength: 1, maxLength: 3 }), move: fc.array(fc.boolean(), { minLength: 3, maxLength: 3 }) }),
              fc.record({ t: fc.constant('data' as const), query: fc.option(fc.nat(3), { nil: undefined }) }),
              fc.record({ t: fc.constant('check' as const) }),
            ),
            { maxLength: 3 },
          ),
          { minLength: 5, maxLength: 5 },
        ),
        pick: fc.record({ position: fc.nat(), partial: fc.option(fc.array(fc.nat(5), { minLength: 4, maxLength: 4 }), { nil: undefined }) }),
      }),
      { minLength: 1, maxLength: 4 },
    ),
  })
  .map(({ releases, projects }): Generated => {
    const names = Array.from({ length: releases }, (_, i) => `r${i + 1}`);
    const defs: Record<string, ProjectDef> = {};
    const kinds: Record<string, Record<string, Kind>> = {};
    const steps: StepDef[][] = names.map(() => []);
    const picks: Generated['picks'] = {};
    projects.forEach((p, pi) => {
      const name = `p${pi}`;
      const dbs = p.dbs.map((_, i) => `d${i}`);
      kinds[name] = Object.fromEntries(p.dbs.map((d, i) => [`d${i}`, d.kind]));
      const counter: Record<string, number> = {};
      const start: Record<string, Expectation> = {};
      p.dbs.forEach((d, i) => {
        if (d.started || i === 0) {
          counter[`d${i}`] = 0;
          start[`d${i}`] = expectation(d.kind, `${name}_d${i}`, 0);
        }
      });
      defs[name] = {
        name,
        databases: Object.fromEntries(dbs.map((d) => [d, `${name}_${d}`])),
        version: Object.fromEntries(dbs.map((d) => [d, kinds[name]![d] === 'num' ? { kind: 'sqlalchemy-migrate', repositories: undefined } : { kind: 'alembic' }])),
        start,
        config: {},
      };
      let n = 0;
      names.forEach((release, ri) => {
        for (const s of p.hops[ri]!) {
          const id = `${release}/${name}/${++n}`;
          const base = { id, release, project: name, command: ['x'], env: 'e', name: undefined, why: undefined, neededWhen: undefined, repeatWhileExit: undefined, maxRuns: 10, timeoutMs: 1000, after: [] };
          if (s.t === 'sync') {
            const expect: Record<string, Expectation> = {};
            for (const [j, k] of [...new Set(s.dbs.map((x) => x % dbs.length))].entries()) {
              const db = dbs[k]!;
              // A sync either moves a database or (when it exists) declares where it already is.
              if (counter[db] === undefined || s.move[j % 3]) counter[db] = (counter[db] ?? 0) + 1;
              expect[db] = expectation(kinds[name]![db]!, `${name}_${db}`, counter[db]!);
            }
            steps[ri]!.push({ ...base, kind: 'sync', expect });
          } else if (s.t === 'data') {
            // A needed-when query names a database that exists by then (the loader refuses one created later).
            const existing = dbs.filter((d) => counter[d] !== undefined);
            const db = s.query === undefined || existing.length === 0 ? undefined : existing[s.query % existing.length]!;
            steps[ri]!.push({ ...base, kind: 'data', expect: {}, neededWhen: db ? { database: db, query: 'SELECT 1' } : undefined });
          } else {
            steps[ri]!.push({ ...base, kind: 'check', expect: {} });
          }
        }
      });
      picks[name] = { position: p.pick.position % (n + 1), partial: p.pick.partial };
    });
    const chain: Chain = {
      name: 'generated',
      description: undefined,
      file: '/generated.yaml',
      sha256: '0'.repeat(64),
      envDir: '/envs',
      projects: defs,
      releases: names.map((release, ri) => ({ release, steps: steps[ri]! })),
    };
    return { chain, picks };
  });

const stepsOf = (chain: Chain, project: string) => chain.releases.flatMap((r) => r.steps.filter((s) => s.project === project));
const kindOf = (chain: Chain, project: string, db: string): Kind => {
  const probe = chain.projects[project]!.version[db]!;
  if (probe.kind !== 'alembic') return 'num';
  const e = [chain.projects[project]!.start[db], ...stepsOf(chain, project).map((s) => s.expect[db])].find((x) => x !== undefined);
  return e?.kind === 'heads' && e.heads.length === 2 ? 'two-heads' : 'alembic';
};

/** The simulated toolchain: a sync puts each database it declares at its expectation; a data step does its work. */
function execute(w: World, s: StepDef): void {
  if (s.kind === 'sync') for (const [db, e] of Object.entries(s.expect)) w.versions[s.project]![db] = e as Version;
  if (s.kind === 'data') w.dataDone.add(s.id);
  if (s.kind !== 'sync') w.ledger.add(s.id);
}

function neededCounts(chain: Chain, w: World): Record<string, number> {
  const out: Record<string, number> = {};
  for (const s of chain.releases.flatMap((r) => r.steps)) {
    if (!s.neededWhen) continue;
    if ((w.versions[s.project]![s.neededWhen.database] ?? absent).kind === 'absent') continue; // the query cannot run yet
    out[s.id] = w.dataDone.has(s.id) ? 0 : 1;
  }
  return out;
}

function reachedState(g: Generated): World {
  const w: World = { versions: {}, dataDone: new Set(), ledger: new Set(), inFlight: new Set() };
  for (const [name, p] of Object.entries(g.chain.projects)) {
    w.versions[name] = Object.fromEntries(Object.keys(p.databases).map((db) => [db, (p.start[db] as Version | undefined) ?? absent]));
    const steps = stepsOf(g.chain, name);
    const { position, partial } = g.picks[name]!;
    for (const s of steps.slice(0, position)) execute(w, s);
    const next = steps[position];
    if (partial && next?.kind === 'sync') {
      // Stopped inside this sync: some databases moved, the others part-way or not at all.
      Object.entries(next.expect).forEach(([db, to], j) => {
        const how = partial[j % partial.length]! % 3;
        const from = w.versions[name]![db]!;
        if (how === 0) w.versions[name]![db] = to as Version;
        if (how === 1 && from.kind !== 'absent' && formatVersion(from) === formatVersion(to)) return;
        if (how === 1) w.versions[name]![db] = partway(kindOf(g.chain, name, db), `${name}_${db}`, from.kind === 'absent' ? undefined : (from as Expectation), to, partial[3]!);
      });
      w.inFlight.add(next.id);
    }
  }
  return w;
}

const planFor = (chain: Chain, w: World, until?: string) =>
  plan({ chain, versions: w.versions, neededCounts: neededCounts(chain, w), ledgerDone: w.ledger, inFlight: w.inFlight, until });

function runPlan(chain: Chain, w: World, p: Plan): void {
  for (const ps of p.steps) {
    if (ps.conditional && neededCounts(chain, w)[ps.step.id] === 0) continue;
    execute(w, ps.step);
    // The ledger holds an interrupted step as in flight until it runs again.
    w.inFlight.delete(ps.step.id);
  }
}

function atEnd(chain: Chain, w: World): void {
  for (const [name, p] of Object.entries(chain.projects)) {
    const steps = stepsOf(chain, name);
    for (const db of Object.keys(p.databases)) {
      const last = [p.start[db], ...steps.map((s) => s.expect[db])].filter((e) => e !== undefined).pop();
      assert.equal(formatVersion(w.versions[name]![db]!), last ? formatVersion(last) : '(absent)', `${name}.${db} at the chain's end`);
    }
    for (const s of steps) if (s.kind === 'data') assert.ok(w.dataDone.has(s.id), `data step ${s.id} done`);
  }
}

/** fc.assert, with the failing assertion's own message (node's runner does not print an error's cause). */
function holds<T>(property: fc.IProperty<T>, numRuns: number): void {
  const r = fc.check(property, { numRuns });
  if (!r.failed) return;
  const e = r.errorInstance as Error | undefined;
  throw new Error(`${e?.message ?? 'property failed'}\nseed ${r.seed}, counterexample ${fc.stringify(r.counterexample)}`, { cause: e });
}

describe('planner properties (generated chains)', () => {
  test(`from any reachable state the plan reaches the end, skips nothing needed, plans nothing done, and then plans nothing (${RUNS} chains)`, () => {
    holds(
      fc.property(chainArb, (g) => {
        const w = reachedState(g);
        const p = planFor(g.chain, w);
        const planned = new Set(p.steps.map((s) => s.step.id));
        for (const ps of p.steps) {
          if (ps.step.kind === 'sync') {
            const done = Object.entries(ps.step.expect).every(([db, e]) => formatVersion(w.versions[ps.step.project]![db]!) === formatVersion(e));
            assert.ok(!done, `sync ${ps.step.id} planned although every database it declares is there`);
          }
          if (ps.step.kind === 'data') assert.ok(!w.dataDone.has(ps.step.id), `data step ${ps.step.id} planned although done`);
        }
        for (const s of g.chain.releases.flatMap((r) => r.steps)) {
          if (s.kind === 'data' && !w.dataDone.has(s.id)) assert.ok(planned.has(s.id), `data step ${s.id} not done but not planned`);
        }
        runPlan(g.chain, w, p);
        atEnd(g.chain, w);
        assert.deepEqual(planFor(g.chain, w).steps.map((s) => s.step.id), [], 'planning again gives nothing');
      }),
      RUNS,
    );
  });

  test('--until plans nothing past its release, and the rest follows on', () => {
    holds(
      fc.property(chainArb, fc.nat(), (g, u) => {
        const w = reachedState(g);
        const until = g.chain.releases[u % g.chain.releases.length]!.release;
        const p = planFor(g.chain, w, until);
        const limit = g.chain.releases.findIndex((r) => r.release === until);
        for (const ps of p.steps) assert.ok(g.chain.releases.findIndex((r) => r.release === ps.step.release) <= limit, `${ps.step.id} is past --until ${until}`);
        runPlan(g.chain, w, p);
        runPlan(g.chain, w, planFor(g.chain, w));
        atEnd(g.chain, w);
      }),
      200,
    );
  });

  test('databases of one project taken from different points are refused exactly when no point of the chain explains them', () => {
    holds(
      fc.property(chainArb, fc.array(fc.nat(), { minLength: 4, maxLength: 4 }), (g, choice) => {
        const name = Object.keys(g.chain.projects)[0]!;
        const project = g.chain.projects[name]!;
        const steps = stepsOf(g.chain, name);
        // The state after each prefix, by simulation.
        const states = Array.from({ length: steps.length + 1 }, (_, i) => {
          const w: World = { versions: {}, dataDone: new Set(), ledger: new Set(), inFlight: new Set() };
          for (const [n, p] of Object.entries(g.chain.projects)) w.versions[n] = Object.fromEntries(Object.keys(p.databases).map((db) => [db, (p.start[db] as Version | undefined) ?? absent]));
          for (const s of steps.slice(0, i)) execute(w, s);
          return w.versions[name]!;
        });
        const mixed = Object.fromEntries(Object.keys(project.databases).map((db, j) => [db, states[choice[j % 4]! % states.length]![db]!]));
        // Explained: every database at the state after some prefix, or, for those the next sync declares, already where it puts them.
        const same = (a: Version, b: Version) => formatVersion(a) === formatVersion(b);
        const explained = states.some((st, i) =>
          Object.keys(mixed).every((db) => same(st[db]!, mixed[db]!) || (steps[i]?.kind === 'sync' && steps[i]!.expect[db] !== undefined && same(states[i + 1]![db]!, mixed[db]!))),
        );
        const w = reachedState(g);
        w.versions[name] = mixed;
        for (const id of w.inFlight) if (id.split('/')[1] === name) w.inFlight.delete(id);
        let refused: LeapfrogError | undefined;
        try {
          planFor(g.chain, w);
        } catch (err) {
          if (!(err instanceof LeapfrogError)) throw err;
          refused = err;
        }
        if (explained) assert.equal(refused, undefined, `refused an explained state: ${refused?.details.join(' | ')}`);
        else assert.ok(refused?.details.some((d) => d.startsWith(`project ${name}: its databases stand where no point`)), `accepted an unexplained state ${JSON.stringify(mixed)}`);
      }),
      300,
    );
  });
});
