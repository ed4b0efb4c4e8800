/**
 * The pre-flight checks are pure functions of gathered facts: here they get
 * plain objects, to reach the results a real machine rarely shows (a full
 * disk, a stat failure) and to pin the rules (fixed-by resolution, estimates).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Plan } from '../src/chain/plan.js';
import type { Chain, EnvDef, StepDef } from '../src/chain/types.js';
import { estimate } from '../src/check/estimate.js';
import { exitCodeFor, worst } from '../src/check/report.js';
import { batchesCheck, blockerCheck, envsCheck, findStep } from '../src/check/rules.js';
import { freeSpaceCheck, transactionsCheck } from '../src/check/rules-server.js';
import type { BlockerFact, EnvFact, RunTiming } from '../src/check/facts.js';
import { wrap } from '../src/check/render.js';
import type { MysqlFacts } from '../src/database/inspect.js';

const GiB = 1024 ** 3;
const mysql = (over: Partial<MysqlFacts> = {}): MysqlFacts => ({ canSeeAllClients: true, clients: [], transactions: [], metadataLocks: undefined, tables: [], ...over });
const table = (bytes: number) => ({ schema: 'compute', table: 't', engine: 'InnoDB', collation: 'utf8mb4_general_ci', bytes });

function step(release: string, n: number, kind: StepDef['kind'], name?: string): StepDef {
  return {
    id: `${release}/compute/${n}`, release, project: 'compute', kind, command: ['x'], env: `compute-${release}`, name, why: undefined,
    expect: {}, neededWhen: undefined, repeatWhileExit: undefined, maxRuns: 1, timeoutMs: 1000, after: [],
  };
}
const flavorStep = step('kilo', 3, 'data', 'migrate flavor data');
const chain: Chain = {
  name: 'c', description: undefined, file: '/c.yaml', sha256: 'x', envDir: '/envs',
  projects: { compute: { name: 'compute', databases: { main: 'compute' }, version: { main: { kind: 'sqlalchemy-migrate', repositories: undefined } }, start: {}, config: {} } },
  releases: [{ release: 'kilo', steps: [step('kilo', 1, 'sync'), flavorStep] }, { release: 'liberty', steps: [step('liberty', 1, 'sync')] }],
};
const planWith = (steps: StepDef[]): Plan => ({
  chain: 'c', until: undefined, projects: [], steps: steps.map((s) => ({ step: s, reason: '', conditional: false })),
  hops: [...new Set(steps.map((s) => s.release))].map((release) => ({ project: 'compute', release })),
});
const blocker = (over: Partial<BlockerFact> = {}): BlockerFact => ({
  project: 'compute', name: 'flavors', database: 'main', dbName: 'compute', message: 'liberty 291 refuses', fixedBy: 'migrate flavor data', outcome: { kind: 'count', count: 5 }, ...over,
});

describe('pre-flight checks over plain facts', () => {
  test('free space: Success with room for two snapshots, Warning under two, Failure under one, Warning when it cannot be measured', () => {
    const storage = (freeBytes: number | undefined) => ({ stateDir: '/s', measuredAt: '/', freeBytes, error: freeBytes === undefined ? 'EACCES' : undefined });
    const facts = (free: number | undefined) => ({ mysql: mysql({ tables: [table(3 * GiB), table(1 * GiB)] }), sqlite: undefined, storage: storage(free) });
    assert.equal(freeSpaceCheck(facts(100 * GiB)).result, 'Success');
    assert.equal(freeSpaceCheck(facts(6 * GiB)).result, 'Warning');
    const full = freeSpaceCheck(facts(3 * GiB));
    assert.equal(full.result, 'Failure');
    assert.match(full.details, /3\.0 GiB free .* estimated snapshot 4\.0 GiB/);
    assert.equal(freeSpaceCheck(facts(undefined)).result, 'Warning');
    const sqlite = { mysql: undefined, sqlite: { files: [{ name: 'a', file: '/a', exists: true, bytes: 10 * GiB, journal: false }], holders: [] }, storage: storage(15 * GiB) };
    assert.equal(freeSpaceCheck(sqlite).result, 'Warning');
  });

  test('envs: cached or unpackable is Success, a URL not cached a Warning online and a Failure offline, a broken env file or a changed cached tree a Failure; only the plan\'s envs count', () => {
    const def = (name: string, kind: 'file' | 'url'): EnvDef => ({ name, file: `/envs/${name}.yaml`, source: { kind, location: kind === 'url' ? `https://a/${name}.tgz` : `/t/${name}.tgz`, sha256: 'x' }, path: ['bin'], vars: {} });
    const intact = { changed: [] as string[], checkedBy: 'hash' as const, repair: '' };
    const envs: EnvFact[] = [
      { name: 'a', def: def('a', 'file'), error: undefined, cached: true, sourceExists: false, ...intact },
      { name: 'b', def: def('b', 'file'), error: undefined, cached: false, sourceExists: true, ...intact },
      { name: 'c', def: def('c', 'url'), error: undefined, cached: false, sourceExists: undefined, ...intact },
      { name: 'd', def: undefined, error: 'd.yaml:1:1: bad', cached: false, sourceExists: undefined, ...intact },
      { name: 'e', def: def('e', 'file'), error: undefined, cached: true, sourceExists: true, changed: ['bin/tool: size 12 bytes, was 10 (content changed)'], checkedBy: 'stat', repair: 'leapfrog envs repair e --chain /c.yaml' },
    ];
    assert.equal(envsCheck({ envs, offline: false }, new Set(['a', 'b'])).result, 'Success');
    assert.equal(envsCheck({ envs, offline: false }, new Set(['a', 'c'])).result, 'Warning');
    assert.equal(envsCheck({ envs, offline: true }, new Set(['a', 'c'])).result, 'Failure');
    assert.equal(envsCheck({ envs, offline: false }, new Set(['d'])).result, 'Failure');
    assert.equal(envsCheck({ envs, offline: false }, undefined).result, 'Failure', 'without a plan, every env of the chain is checked');
    const changed = envsCheck({ envs, offline: false }, new Set(['a', 'e']));
    assert.equal(changed.result, 'Failure');
    assert.match(changed.details, /e: changed since it was unpacked[^]*leapfrog envs repair e --chain \/c\.yaml[^]*bin\/tool: size 12 bytes/);
  });

  test('blockers: fixed by a planned step is a Success naming the rows and the step; by a step of the chain not in the plan, a Failure; zero rows a Success', () => {
    const fixed = blockerCheck(chain, blocker(), planWith([flavorStep]));
    assert.equal(fixed.result, 'Success');
    assert.match(fixed.details, /^5 rows on compute: liberty 291 refuses\. The plan fixes these 5 rows: kilo\/compute\/3 \(migrate flavor data\) in env compute-kilo runs before/);
    assert.equal(blockerCheck(chain, blocker({ fixedBy: 'kilo/compute/3' }), planWith([flavorStep])).result, 'Success', 'by id as well as by name');
    const passed = blockerCheck(chain, blocker(), planWith([step('liberty', 1, 'sync')]));
    assert.equal(passed.result, 'Failure');
    assert.match(passed.details, /kilo\/compute\/3 \(migrate flavor data\) in env compute-kilo fixes it but is not in the plan/);
    assert.equal(blockerCheck(chain, blocker({ outcome: { kind: 'count', count: 0 } }), undefined).result, 'Success');
    assert.match(blockerCheck(chain, blocker(), undefined).details, /fixes it, if it runs: there is no plan to tell/, 'without a plan, not a false "not planned"');
    assert.equal(blockerCheck(chain, blocker({ fixedBy: 'nope' }), undefined).result, 'Failure');
    assert.equal(blockerCheck(chain, blocker({ outcome: { kind: 'not-yet', reason: 'no such table: x' } }), planWith([flavorStep])).result, 'Success');
    assert.equal(blockerCheck(chain, blocker({ fixedBy: undefined, outcome: { kind: 'not-yet', reason: 'no such table: x' } }), planWith([flavorStep])).result, 'Warning');
  });

  test('data batches: batch × max-runs against the rows counted now; a Warning past max-runs, a Failure past twice it; not projected without batch: or a count', () => {
    const data = (over: Partial<StepDef>): StepDef => ({ ...flavorStep, batch: 50, maxRuns: 100, ...over });
    const find = (project: string, ref: string) => findStep(chain, project, ref);
    const check = (s: StepDef, needed: Record<string, number>, blockers: BlockerFact[] = []) => batchesCheck(chain, planWith([s]), needed, blockers, find);
    const fits = check(data({}), { 'kilo/compute/3': 5000 });
    assert.equal(fits.result, 'Success', fits.details);
    assert.match(fits.details, /5000 rows \(its needed-when query\) at 50 a run: 100 runs, max-runs 100: fits/);
    const over = check(data({}), { 'kilo/compute/3': 5422 });
    assert.equal(over.result, 'Warning');
    assert.match(over.details, /5422 rows .* 109 runs, max-runs 100: it can move 5000 rows before the runner gives up; the run would fail after 100 runs\. Raise max-runs to at least 109/);
    assert.deepEqual(over.data, [{ step: 'kilo/compute/3', rows: 5422, counted: 'its needed-when query', batch: 50, maxRuns: 100, projectedRuns: 109, result: 'Warning' }]);
    assert.equal(check(data({}), { 'kilo/compute/3': 10000 }).result, 'Warning', 'exactly twice is still a Warning');
    const far = check(data({}), { 'kilo/compute/3': 10001 });
    assert.equal(far.result, 'Failure');
    assert.match(far.details, /far off/);
    // Without needed-when, the blockers it fixes count its rows; repeated on an exit code, one more run says "done".
    const repeated = data({ repeatWhileExit: 1, maxRuns: 3 });
    assert.equal(check(repeated, {}, [blocker({ outcome: { kind: 'count', count: 100 } })]).result, 'Success', '2 batches and the last run: 3');
    const more = check(repeated, {}, [blocker({ outcome: { kind: 'count', count: 101 } })]);
    assert.equal(more.result, 'Warning');
    assert.match(more.details, /101 rows \(blocker "flavors"\) at 50 a run: 4 runs, max-runs 3/);
    const none = check(data({ batch: undefined }), { 'kilo/compute/3': 1e6 });
    assert.equal(none.result, 'Success');
    assert.match(none.details, /declares no batch:, so its runs are not projected/);
    const later = check(data({}), {}, [blocker({ outcome: { kind: 'not-yet', reason: 'no such table: x' } })]);
    assert.match(later.details, /its rows cannot be counted yet \(blocker "flavors" names what earlier steps create\)/);
  });

  test('transactions: a metadata lock held on a chain table is a Failure even without a long transaction', () => {
    const r = transactionsCheck({ sqlite: undefined, maxTransactionAge: 60, mysql: mysql({ metadataLocks: [{ threadId: 7, schema: 'compute', table: 'instances', mode: 'MDL_SHARED_READ' }] }) });
    assert.equal(r.result, 'Failure');
    assert.match(r.details, /thread 7: MDL_SHARED_READ on compute\.instances/);
    assert.doesNotMatch(r.details, /not visible/);
  });

  test('estimate: per hop from the newest run that completed it; unknown hops make the total unknown', () => {
    const run = (runId: number, steps: [string, string, number][]): RunTiming => ({
      runId, kind: 'run', target: 't', finishedAt: null,
      steps: steps.map(([release, status, ms]) => ({ stepId: `${release}/compute/1`, project: 'compute', release, status, durationMs: ms })),
    });
    const history = [run(3, [['liberty', 'succeeded', 200]]), run(2, [['kilo', 'succeeded', 100], ['kilo', 'skipped', 5], ['liberty', 'succeeded', 999]])];
    const e = estimate(planWith([flavorStep, step('liberty', 1, 'sync')]), history);
    assert.deepEqual(e.hops.map((h) => [h.release, h.ms, h.fromRun]), [['kilo', 105, 2], ['liberty', 200, 3]]);
    assert.equal(e.totalMs, 305);
    const partial = estimate(planWith([flavorStep, step('liberty', 1, 'sync')]), [run(4, [['kilo', 'succeeded', 50]])]);
    assert.equal(partial.totalMs, undefined);
    assert.equal(partial.knownMs, 50);
  });

  test('exit code is the worst result, as nova-status', () => {
    assert.equal(exitCodeFor(worst([])), 0);
    assert.equal(exitCodeFor(worst([{ result: 'Success' }, { result: 'Warning' }])), 1);
    assert.equal(exitCodeFor(worst([{ result: 'Failure' }, { result: 'Warning' }])), 2);
  });

  test('wrap keeps every line within the width, cutting words longer than a line', () => {
    const lines = wrap(`Details: ${'word '.repeat(40)}/a/very/${'long/'.repeat(30)}path\nsecond paragraph`, 76, '  ');
    assert.ok(lines.every((l) => l.length <= 76), lines.join('\n'));
    assert.ok(lines[0]!.startsWith('Details: word'));
    assert.ok(lines.slice(1).every((l) => l.startsWith('  ')));
    assert.equal(lines.at(-1), '  second paragraph');
  });
});
