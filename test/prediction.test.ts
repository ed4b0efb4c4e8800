/**
 * The prediction that scales, end to end on the fake cloud (SQLite, the real
 * toolchains): a rehearsal on a copy ten times smaller than the target, then
 * check-migrations on the full-size target, then the real run there. The
 * fake kilo flavor migration really takes longer with more rows: it runs in
 * batches of 50 (`--max-number 50`), each batch a new process reading and
 * rewriting its instances, as nova's does.
 *
 * The chain is cut to its kilo hops: they hold both kinds of steps (syncs
 * whose time does not depend on the rows, the flavor migration whose time
 * does) and keep the test to about a minute on a busy machine.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { CACHE, chainVariant, fakeCloud, leapfrog } from './helpers.js';

type Json = Record<string, any>;

describe('prediction from a smaller rehearsal', () => {
  test('a rehearsal on a 10x smaller copy predicts the full-size run within 50 % (scaled up from the rehearsal times, not taken as they are); check-migrations warns about the size and shows the model; ledger show compares per hop', async (t) => {
    const chain = chainVariant('fakecloud-kilo', (c) => {
      c.chain = 'fakecloud-kilo';
      c.releases = c.releases.slice(0, 1);
    });
    const full = await fakeCloud({ instances: 600 });
    const small = await fakeCloud({ instances: 60 });
    const files = (['compute', 'identity', 'image'] as const).map((n) => small.file(n));
    const rehearsal = await leapfrog(['rehearse', '--chain', chain, '--dump', ...files, '--state-dir', full.state, '--cache-dir', CACHE, '--format', 'json']);
    assert.equal(rehearsal.exitCode, 0, rehearsal.stderr);
    const rehearsed = (JSON.parse(rehearsal.stdout) as Json).hops.reduce((n: number, h: Json) => n + h.durationMs, 0) as number;

    const check = await leapfrog(['check-migrations', ...full.args(chain), '--format', 'json']);
    const report = JSON.parse(check.stdout) as Json;
    const size = report.checks.find((c: Json) => c.check === 'Rehearsal size');
    assert.equal(size?.result, 'Warning', JSON.stringify(report.checks));
    assert.match(size.details, /ran on a copy 10× smaller than this target \(54 rows there, 542 here/);
    assert.equal(check.exitCode, 1, 'the size is a Warning');
    const flavor = report.estimate.hops.flatMap((h: Json) => h.model).find((m: Json) => m.step === 'kilo/compute/3');
    assert.equal(flavor.model, 'scaled');
    assert.deepEqual([flavor.rows, flavor.runs, flavor.observed[0].rows, flavor.observed[0].runs], [542, 11, 54, 2], 'ceil(542 / 50) batches here, 2 there');
    assert.ok(flavor.ms > 3 * flavor.observed[0].ms, `scaled up: ${JSON.stringify(flavor)}`);
    const syncs = report.estimate.hops.flatMap((h: Json) => h.model).filter((m: Json) => m.step !== 'kilo/compute/3');
    assert.ok(syncs.every((m: Json) => m.model === 'fixed' && m.ms === m.observed[0].ms), 'the syncs take what they took');
    const predicted = report.estimate.totalMs as number;
    const text = await leapfrog(['check-migrations', ...full.args(chain)]);
    // Wrapped to 80 columns: joined again to match.
    assert.match(text.stdout.replace(/\n +/g, ' '), /kilo\/compute\/3: 11 runs × .* \+ .*\/row × 542 rows = .* \(scaled from .* at 54 rows in 2 runs \(rehearsal .*\)\)/);
    const md = await leapfrog(['check-migrations', ...full.args(chain), '--format', 'markdown']);
    assert.match(md.stdout, /### Estimate[\s\S]*kilo\/compute\/3: 11 runs ×/);

    const run = await leapfrog(['run', ...full.args(chain)]);
    assert.equal(run.exitCode, 0, run.stderr);
    const shown = JSON.parse((await leapfrog(['ledger', 'show', '1', '--state-dir', full.state, '--format', 'json'])).stdout) as Json;
    const actual = shown.predictions.reduce((n: number, p: Json) => n + p.actualMs, 0) as number;
    assert.equal(shown.predictions.length, 3);
    assert.ok(Math.abs(shown.predictions.reduce((n: number, p: Json) => n + p.predictedMs, 0) - predicted) < predicted * 0.01, 'the run recorded the prediction check-migrations made');
    const steps = shown.steps.find((s: Json) => s.step_id === 'kilo/compute/3');
    assert.deepEqual([steps.rows, steps.row_counts, steps.attempts], [542, { 'needed-when': 542 }, 11]);
    const off = (actual - predicted) / actual;
    t.diagnostic(`rehearsal on 60 instances ${rehearsed.toFixed(0)} ms; predicted for 600 ${predicted.toFixed(0)} ms; run on 600 ${actual.toFixed(0)} ms (${(off * 100).toFixed(1)} %)`);
    // Wall times of second-long runs on a shared machine (npm test runs two files at once) move by
    // a third from run to run: the test holds the model to what it must do with room for that
    // noise (within half of the real run's time; scaled up from the rehearsal's times, not taken
    // as they are), and the 30 % a quiet machine gives is a measurement, in the diagnostic above.
    assert.ok(Math.abs(off) <= 0.5, `predicted ${predicted.toFixed(0)} ms, took ${actual.toFixed(0)} ms (${(off * 100).toFixed(0)} %)`);
    assert.ok(predicted > 1.3 * rehearsed, `predicted ${predicted.toFixed(0)} ms: not scaled up from the rehearsal's ${rehearsed.toFixed(0)} ms`);
    assert.ok(rehearsed < actual, `the rehearsal took ${rehearsed.toFixed(0)} ms, the real run ${actual.toFixed(0)} ms`);

    const shownText = await leapfrog(['ledger', 'show', '1', '--state-dir', full.state]);
    assert.match(shownText.stdout, /Predicted before the run .* and measured:/);
    assert.match(shownText.stdout, /│ compute@kilo +│ [\d.]+ s +│ [\d.]+ s +│ [+−]\d+ % +│ rehearsal /);
    assert.match(shownText.stdout, /Total over 3 hops: predicted [\d.]+ s, took [\d.]+ s \([+−]\d+ %\)\./);
    assert.match(shownText.stdout, /kilo\/compute\/3 +│ data .*│ 542 \(needed-when\)/);
  });
});
