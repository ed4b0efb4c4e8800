/**
 * The per-step linear model (src/check/predict.ts) and the estimate built on
 * it (src/check/estimate.ts): pure functions over plain objects.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Plan } from '../src/chain/plan.js';
import { estimate } from '../src/check/estimate.js';
import type { RunTiming } from '../src/check/facts.js';
import { fitLine, overheadOf, predictStep, sizeRatio } from '../src/check/predict.js';
import { sizeCheck } from '../src/check/rules-estimate.js';
import { modelText, sizeText } from '../src/report/prediction.js';

const near = (a: number, b: number, what: string) => assert.ok(Math.abs(a - b) < 1e-6, `${what}: ${a} is not ${b}`);

describe('predict: one step', () => {
  test('a step that declares no rows takes the time it took, whatever the target holds', () => {
    const p = predictStep('kilo/compute/2', [{ ms: 800, rows: null, from: 'r1' }], 5000, 100);
    assert.equal(p.model, 'fixed');
    assert.equal(p.ms, 800);
    assert.equal(predictStep('s', [{ ms: 800, rows: 60, from: 'r1' }], undefined, 100).model, 'fixed', 'rows here unknown: nothing to scale by');
  });

  test('one observation: fixed part from the run\'s overhead, the rest per row', () => {
    const p = predictStep('kilo/compute/3', [{ ms: 1100, rows: 60, from: 'r1' }], 600, 100);
    assert.equal(p.model, 'scaled');
    assert.equal(p.fixedMs, 100);
    near(p.perRowMs, 1000 / 60, 'per row');
    near(p.ms, 100 + 10_000, 'ten times the rows, ten times the per-row part, the fixed part once');
    assert.deepEqual(p.observed, [{ ms: 1100, rows: 60, from: 'r1' }]);
    // No overhead known: proportional. An overhead longer than the step itself: the whole step is fixed.
    near(predictStep('s', [{ ms: 1100, rows: 60, from: 'r1' }], 600, undefined).ms, 11_000, 'proportional');
    near(predictStep('s', [{ ms: 50, rows: 60, from: 'r1' }], 600, 100).ms, 50, 'overhead capped at the step');
    // Fewer rows here than there scale down, to the fixed part at none.
    near(predictStep('s', [{ ms: 1100, rows: 60, from: 'r1' }], 0, 100).ms, 100, 'no rows here');
  });

  test('a batch: data step pays its start once per batch: a copy that fit in one batch still scales', () => {
    // 40 rows in one run of 1 s, of which 900 ms is starting the command (the run's shortest row-less step).
    const p = predictStep('kilo/compute/3', [{ ms: 1000, rows: 40, runs: 1, from: 'r1' }], 600, 900, 50);
    assert.equal(p.runs, 12, 'ceil(600 / 50)');
    near(p.fixedMs, 12 * 900, 'twelve starts');
    near(p.perRowMs, 100 / 40, 'per row');
    near(p.ms, 12 * 900 + 600 * 2.5, 'ms');
    assert.match(modelText(p)!, /^kilo\/compute\/3: 12 runs × 900 ms \+ 2\.5 ms\/row × 600 rows = 12\.3 s \(scaled from 1\.0 s at 40 rows \(r1\)\)$/);
    // Observed in 2 runs: the start is the smaller of the run's overhead and half the time.
    const two = predictStep('s', [{ ms: 1000, rows: 60, runs: 2, from: 'r1' }], 600, 900, 50);
    near(two.fixedMs, 12 * 500, 'a start costs at most half of two runs');
    near(two.perRowMs, 0, 'nothing left per row');
    // Without batch: the runs are not projected; one start, the rest per row.
    const unbatched = predictStep('s', [{ ms: 1000, rows: 40, runs: 3, from: 'r1' }], 400, 100);
    assert.equal(unbatched.runs, 1);
    near(unbatched.ms, 100 + 900 * 10, 'ms');
  });

  test('an observation with no rows cannot be scaled: its time is kept and the model says so', () => {
    const p = predictStep('s', [{ ms: 30, rows: 0, from: 'r1' }], 400, 20);
    assert.equal(p.model, 'unscalable');
    assert.equal(p.ms, 30);
    assert.match(modelText(p)!, /400 rows here, none there: its time here is not known/);
    assert.equal(predictStep('s', [{ ms: 30, rows: 0, from: 'r1' }], 0, 20).model, 'fixed');
  });

  test('several observations at different row counts: least squares, newest first, at most five', () => {
    const obs = [
      { ms: 2100, rows: 200, from: 'r3' },
      { ms: 1100, rows: 100, from: 'r2' },
      { ms: 600, rows: 50, from: 'r1' },
    ];
    const p = predictStep('s', obs, 1000, 5000);
    assert.equal(p.model, 'fitted', 'a fit ignores the overhead guess');
    near(p.fixedMs, 100, 'fixed');
    near(p.perRowMs, 10, 'per row');
    near(p.ms, 10_100, 'ms');
    assert.equal(p.observed.length, 3);
    const many = Array.from({ length: 8 }, (_, i) => ({ ms: 10 * (i + 1), rows: i + 1, from: `r${i}` }));
    assert.equal(predictStep('s', many, 10, 0).observed.length, 5);
    // The same rows twice is one point: scaled, not fitted.
    assert.equal(predictStep('s', [obs[1]!, { ...obs[1]!, ms: 1300 }], 1000, 100).model, 'scaled');
  });

  test('fitLine never returns a negative part', () => {
    assert.deepEqual(fitLine([{ rows: 10, ms: 100 }, { rows: 20, ms: 90 }]), { fixedMs: 95, perRowMs: 0 }, 'more rows, faster: the mean');
    const origin = fitLine([{ rows: 10, ms: 10 }, { rows: 20, ms: 40 }]);
    assert.equal(origin.fixedMs, 0, 'a negative intercept: through the origin');
    near(origin.perRowMs, (10 * 10 + 20 * 40) / (100 + 400), 'slope through the origin');
  });

  test('overhead: the shortest step that touches no rows', () => {
    assert.equal(overheadOf([{ ms: 500, rows: null }, { ms: 90, rows: null }, { ms: 20, rows: 5 }]), 90);
    assert.equal(overheadOf([{ ms: 20, rows: 5 }]), undefined);
  });
});

describe('estimate: hops scaled by the rows here', () => {
  const plan: Plan = {
    chain: 'c', until: undefined, projects: [], steps: [],
    hops: [{ project: 'compute', release: 'kilo' }, { project: 'compute', release: 'liberty' }],
  };
  const s = (stepId: string, durationMs: number, rows: number | null, status = 'succeeded') => ({ stepId, project: 'compute', release: stepId.split('/')[0]!, status, durationMs, rows });
  const rehearsal: RunTiming = {
    runId: 1, label: 'rehearsal A (run 1)', kind: 'rehearsal', target: 'copy', finishedAt: '2026-01-01',
    steps: [s('kilo/compute/1', 400, null), s('kilo/compute/2', 1100, 60), s('liberty/compute/1', 100, null)],
  };

  test('each hop sums its steps, scaled ones by the model; the sizes compared per source', () => {
    const e = estimate(plan, [rehearsal], { 'kilo/compute/2': 600 });
    assert.deepEqual(e.hops.map((h) => [h.release, Math.round(h.ms!)]), [['kilo', 400 + 100 + 10_000], ['liberty', 100]]);
    assert.equal(e.hops[0]!.steps!['kilo/compute/2'], 100 + 10_000);
    assert.deepEqual(e.hops[0]!.model!.map((m) => m.model), ['fixed', 'scaled']);
    assert.equal(Math.round(e.totalMs!), 10_600);
    assert.deepEqual(e.sizes, [{ from: 'rehearsal A (run 1)', observedRows: 60, rowsNow: 600, ratio: 10 }]);
    assert.match(sizeText(e.sizes![0]!)!, /ran on a copy 10× smaller than this target \(60 rows there, 600 here/);
    assert.match(modelText(e.hops[0]!.model![1]!)!, /^kilo\/compute\/2: 100 ms \+ 16\.7 ms\/row × 600 rows = 10\.1 s \(scaled from 1\.1 s at 60 rows \(rehearsal A \(run 1\)\)\)$/);
  });

  test('without row counts here the times are as measured (the estimate before scaling existed)', () => {
    const e = estimate(plan, [rehearsal]);
    assert.equal(e.totalMs, 1600);
    assert.deepEqual(e.sizes, []);
  });

  test('an older run of the same step at another row count makes it a fit', () => {
    const older: RunTiming = { ...rehearsal, runId: 7, label: 'run 7', finishedAt: '2025-01-01', steps: [s('kilo/compute/1', 400, null), s('kilo/compute/2', 2100, 120)] };
    const e = estimate(plan, [rehearsal, older], { 'kilo/compute/2': 600 });
    const m = e.hops[0]!.model![1]!;
    assert.equal(m.model, 'fitted');
    near(m.perRowMs, 1000 / 60, 'per row');
    near(m.fixedMs, 100, 'fixed');
    assert.equal(e.hops[0]!.from, 'rehearsal A (run 1)', 'the hop still comes from the newest run that completed it');
  });

  test('size check: a Warning when a copy was much smaller, Success at about the same size, nothing when nothing scales', () => {
    const small = sizeCheck(estimate(plan, [rehearsal], { 'kilo/compute/2': 600 }))!;
    assert.equal(small.result, 'Warning');
    assert.match(small.details, /10× smaller .* rehearse on a full-size copy/);
    const same = sizeCheck(estimate(plan, [rehearsal], { 'kilo/compute/2': 70 }))!;
    assert.equal(same.result, 'Success');
    assert.match(same.details, /about this target's size \(rehearsal A \(run 1\): 60 rows there, 70 here\)/);
    assert.equal(sizeCheck(estimate(plan, [rehearsal])), undefined);
    assert.equal(sizeRatio([]), undefined);
  });
});
