import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { plan, type PlanInputs } from '../src/chain/plan.js';
import type { Chain, Expectation, ProjectDef, StepDef, Version } from '../src/chain/types.js';
import { LeapfrogError } from '../src/errors.js';

// The planner is pure: these tests build chains and probed state as plain objects.

const num = (value: number): Expectation & Version => ({ kind: 'number', value });
const absent: Version = { kind: 'absent' };

function step(release: string, project: string, n: number, kind: StepDef['kind'], extra: Partial<StepDef> = {}): StepDef {
  return {
    id: `${release}/${project}/${n}`,
    release,
    project,
    kind,
    command: [`${project}-manage`, kind],
    env: `${project}-${release}`,
    name: undefined,
    why: undefined,
    expect: {},
    neededWhen: undefined,
    repeatWhileExit: undefined,
    maxRuns: kind === 'data' ? 10 : 1,
    timeoutMs: 1000,
    after: [],
    ...extra,
  };
}

const compute: ProjectDef = {
  name: 'compute',
  databases: { main: 'compute', api: 'compute_api' },
  version: { main: { kind: 'sqlalchemy-migrate', repositories: undefined }, api: { kind: 'sqlalchemy-migrate', repositories: undefined } },
  start: { main: num(254) },
  config: {},
};
const image: ProjectDef = {
  name: 'image',
  databases: { main: 'image' },
  version: { main: { kind: 'alembic' } },
  start: { main: { kind: 'heads', heads: ['juno'] } },
  config: {},
};
const heads = (h: string): Expectation & Version => ({ kind: 'heads', heads: [h] });

const chain: Chain = {
  name: 'test-chain',
  description: undefined,
  file: '/chains/test-chain.yaml',
  sha256: '0'.repeat(64),
  envDir: '/envs',
  projects: { compute, image },
  releases: [
    {
      release: 'kilo',
      steps: [
        step('kilo', 'compute', 1, 'sync', { expect: { main: num(280) } }),
        step('kilo', 'compute', 2, 'data', { neededWhen: { database: 'main', query: 'SELECT COUNT(*) FROM flavors_left' } }),
        step('kilo', 'image', 1, 'sync', { expect: { main: heads('kilo') } }),
      ],
    },
    {
      release: 'liberty',
      steps: [
        step('liberty', 'compute', 1, 'sync', { expect: { main: num(302) } }),
        step('liberty', 'image', 1, 'sync', { expect: { main: heads('liberty') } }),
      ],
    },
    {
      release: 'mitaka',
      steps: [
        step('mitaka', 'compute', 1, 'sync', { expect: { main: num(319), api: num(7) } }),
        step('mitaka', 'compute', 2, 'data', { repeatWhileExit: 1 }),
        step('mitaka', 'image', 1, 'sync', { expect: { main: heads('mitaka02') }, after: [{ project: 'compute', release: 'mitaka' }] }),
      ],
    },
  ],
};

function inputs(versions: Record<string, Record<string, Version>>, extra: Partial<PlanInputs> = {}): PlanInputs {
  return { chain, versions, neededCounts: {}, ledgerDone: new Set(), ...extra };
}
const ids = (p: ReturnType<typeof plan>) => p.steps.map((s) => s.step.id);
const atStart = { compute: { main: num(254), api: absent }, image: { main: heads('juno') } };

describe('plan', () => {
  test('at the start, every step runs, in chain order', () => {
    const p = plan(inputs(atStart));
    assert.deepEqual(ids(p), [
      'kilo/compute/1', 'kilo/compute/2', 'kilo/image/1',
      'liberty/compute/1', 'liberty/image/1',
      'mitaka/compute/1', 'mitaka/compute/2', 'mitaka/image/1',
    ]);
    assert.equal(p.projects.find((x) => x.project === 'compute')!.at, undefined);
    assert.deepEqual(p.hops.map((h) => `${h.project}@${h.release}`), ['compute@kilo', 'image@kilo', 'compute@liberty', 'image@liberty', 'compute@mitaka', 'image@mitaka']);
  });

  test('at the end, nothing runs', () => {
    const p = plan(inputs({ compute: { main: num(319), api: num(7) }, image: { main: heads('mitaka02') } }, { ledgerDone: new Set(['mitaka/compute/2']) }));
    assert.deepEqual(ids(p), []);
    assert.equal(p.projects.find((x) => x.project === 'image')!.at, 'mitaka');
  });

  test('a hop whose sync is reached but whose data step is not proven done runs only the data step', () => {
    const p = plan(inputs({ ...atStart, compute: { main: num(280), api: absent } }, { neededCounts: { 'kilo/compute/2': 12 } }));
    assert.deepEqual(ids(p).filter((i) => i.includes('compute')), ['kilo/compute/2', 'liberty/compute/1', 'mitaka/compute/1', 'mitaka/compute/2']);
    const data = p.steps.find((s) => s.step.id === 'kilo/compute/2')!;
    assert.match(data.reason, /returns 12/);
    assert.equal(data.conditional, false);
    assert.equal(p.projects.find((x) => x.project === 'compute')!.at, undefined, 'kilo is not complete while its data step remains');
  });

  test('a data step whose probe returns 0 is proven done and its hop skipped', () => {
    const p = plan(inputs({ ...atStart, compute: { main: num(280), api: absent } }, { neededCounts: { 'kilo/compute/2': 0 } }));
    assert.ok(!ids(p).includes('kilo/compute/2'));
    const c = p.projects.find((x) => x.project === 'compute')!;
    assert.equal(c.at, 'kilo');
    assert.match(c.skipped.find((s) => s.step.id === 'kilo/compute/2')!.reason, /returns 0/);
  });

  test('a data step without a probe is done only when the ledger says so', () => {
    const at319 = { ...atStart, compute: { main: num(319), api: num(7) } };
    assert.deepEqual(ids(plan(inputs(at319))).filter((i) => i.includes('compute')), ['mitaka/compute/2']);
    assert.deepEqual(ids(plan(inputs(at319, { ledgerDone: new Set(['mitaka/compute/2']) }))).filter((i) => i.includes('compute')), []);
  });

  test('data steps after planned work are conditional: their probe is taken again before they run', () => {
    const p = plan(inputs(atStart, { neededCounts: { 'kilo/compute/2': 0 } }));
    const data = p.steps.find((s) => s.step.id === 'kilo/compute/2')!;
    assert.equal(data.conditional, true, 'the sync before it may change the answer');
  });

  test('a half-done sync (between boundaries) resumes that sync', () => {
    const p = plan(inputs({ ...atStart, compute: { main: num(270), api: absent } }));
    assert.equal(ids(p)[0], 'kilo/compute/1');
  });

  test('--until stops at a release', () => {
    const p = plan(inputs(atStart, { until: 'liberty' }));
    assert.deepEqual(ids(p), ['kilo/compute/1', 'kilo/compute/2', 'kilo/image/1', 'liberty/compute/1', 'liberty/image/1']);
    assert.throws(() => plan(inputs(atStart, { until: 'zed' })), (e: unknown) => e instanceof LeapfrogError && e.kind === 'input' && /no such release.*kilo, liberty, mitaka/.test(e.message));
  });

  test('a database ahead of the chain is refused, naming project, database and version', () => {
    assert.throws(
      () => plan(inputs({ ...atStart, compute: { main: num(334), api: num(20) } })),
      (e: unknown) =>
        e instanceof LeapfrogError && e.kind === 'refused' && e.details.some((d) => /project compute, database main \(compute\): is at version 334, ahead of the chain's end \(319\)/.test(d)),
    );
  });

  test('a version the chain does not know is refused', () => {
    assert.throws(
      () => plan(inputs({ ...atStart, image: { main: heads('ocata01') } })),
      (e: unknown) => e instanceof LeapfrogError && e.kind === 'refused' && e.details.some((d) => /project image, database main \(image\): is at version ocata01, which chain test-chain does not know/.test(d)),
    );
  });

  test('a database behind the start, or missing though the chain starts it, is refused; all problems at once', () => {
    assert.throws(
      () => plan(inputs({ compute: { main: num(250), api: absent }, image: { main: absent } })),
      (e: unknown) =>
        e instanceof LeapfrogError &&
        e.details.length === 2 &&
        /behind the chain's start \(254\)/.test(e.details[0]!) &&
        /image.*does not exist/.test(e.details[1]!),
    );
  });

  test('after: edges are carried into the plan', () => {
    const p = plan(inputs(atStart));
    assert.deepEqual(p.steps.find((s) => s.step.id === 'mitaka/image/1')!.step.after, [{ project: 'compute', release: 'mitaka' }]);
  });

  test('a database sqlalchemy-migrate moved until a release handed it over to alembic (nova, cinder, keystone in zed) is ordered across the handover', () => {
    const nova: ProjectDef = {
      name: 'nova',
      databases: { main: 'nova' },
      version: { main: { kind: 'alembic-else-sqlalchemy-migrate', repositories: undefined } },
      start: { main: num(412) },
      config: {},
    };
    const c: Chain = {
      ...chain,
      projects: { nova },
      releases: [
        { release: 'zed', steps: [step('zed', 'nova', 1, 'sync', { expect: { main: heads('ccb0fa1a2252') } })] },
        { release: 'epoxy', steps: [step('epoxy', 'nova', 1, 'sync', { expect: { main: heads('2903cd72dc14') } })] },
      ],
    };
    const at = (v: Version) => plan({ chain: c, versions: { nova: { main: v } }, neededCounts: {}, ledgerDone: new Set() }).steps.map((x) => x.step.id);
    assert.deepEqual(at(num(412)), ['zed/nova/1', 'epoxy/nova/1']);
    assert.deepEqual(at(num(418)), ['zed/nova/1', 'epoxy/nova/1'], 'zed stopped in its legacy migrations (413-422): zed resumes');
    assert.deepEqual(at(heads('ccb0fa1a2252')), ['epoxy/nova/1']);
    assert.deepEqual(at(heads('2903cd72dc14')), []);
  });

  test('a database with tables and no version is partly created, never absent: refused naming its tables', () => {
    assert.throws(
      () => plan(inputs({ ...atStart, image: { main: { kind: 'partial', tables: ['images', 'image_members'] } } })),
      (e: unknown) =>
        e instanceof LeapfrogError &&
        e.kind === 'refused' &&
        e.details.some((d) => /project image, database main \(image\): partly created: 2 tables \(images, image_members\) but no version recorded/.test(d)),
    );
  });

  test('a partly created database whose chain declares partial: rerun is planned from its first migration, which runs again over the tables', () => {
    const partial: Version = { kind: 'partial', tables: ['cell_mappings', 'host_mappings'] };
    const refused = () => plan(inputs({ ...atStart, compute: { main: num(302), api: partial } }));
    assert.throws(refused, (e: unknown) => e instanceof LeapfrogError && e.details.some((d) => /database api \(compute_api\): partly created: 2 tables \(cell_mappings, host_mappings\).*partial: \{ api: rerun \}/.test(d)));
    const rerun: Chain = { ...chain, projects: { ...chain.projects, compute: { ...compute, partial: { api: 'rerun' } } } };
    const p = plan({ ...inputs({ ...atStart, compute: { main: num(302), api: partial } }), chain: rerun });
    assert.deepEqual(ids(p).filter((i) => i.includes('compute')), ['mitaka/compute/1', 'mitaka/compute/2']);
    const first = p.steps.find((s) => s.step.id === 'mitaka/compute/1')!;
    assert.match(first.reason, /api at \(partly created: 2 tables, no version\).*api is partly created \(2 tables \(cell_mappings, host_mappings\), no version\): the chain declares partial: rerun/);
    // rerun is about a first migration only: a database that has a version is judged by it as always.
    assert.deepEqual(ids(plan({ ...inputs({ ...atStart, compute: { main: num(319), api: num(7) } }), chain: rerun })).filter((i) => i.includes('compute')), ['mitaka/compute/2']);
  });
});
