/**
 * Progress that tells time: the model's arithmetic on plain objects, then
 * the real CLI on the fake cloud, in a pipe (a line per step start and end,
 * batches thinned) and in a real terminal (tmux): a row for every project
 * at every capture, elapsed and ETA, a failure and an interruption marked,
 * colour only when wanted, and a clean screen after Ctrl-C.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Plan, PlannedStep } from '../src/chain/plan.js';
import { frame, wantColor } from '../src/report/progress-frame.js';
import { apply, initialState, projectLeftMs, runLeftMs, stepLeftMs } from '../src/report/progress-model.js';
import { BATCH_LINE_MS, lineRenderer } from '../src/report/progress.js';
import { rowsOf, screen } from '../src/report/screen.js';
import { eventually, fakeCloud, leapfrog, ROOT, tempDir, type Cloud, type CliResult } from './helpers.js';

type Json = Record<string, any>;

function planned(id: string, kind = 'sync', name?: string): PlannedStep {
  const [release, project] = id.split('/');
  return { step: { id, release, project, kind, name } as never, reason: '', conditional: false };
}

/** A plan of two projects as the core's `planned` event carries it, with an estimate for some steps. */
function plannedEvent(ms: Record<string, number>) {
  const a = [planned('kilo/a/1', 'data', 'move rows'), planned('kilo/a/2')];
  const b = [planned('kilo/b/1')];
  const plan = { projects: [{ project: 'a', steps: a }, { project: 'b', steps: b }], steps: [...a, ...b], hops: [] } as unknown as Plan;
  const hops = [{ project: 'a', release: 'kilo', ms: 0, fromRun: 3, from: 'run 3', steps: ms }];
  return { type: 'planned' as const, preflight: { plan }, estimate: { hops, totalMs: undefined, knownMs: 0 } };
}

describe('progress arithmetic', () => {
  test('a data step is timed by the rate its needed-when count falls at; other steps by the earlier run', () => {
    const s = initialState(0);
    const e = plannedEvent({ 'kilo/a/1': 60_000, 'kilo/a/2': 4000, 'kilo/b/1': 2000 });
    apply(s, e, 0);
    const a1 = e.preflight.plan.projects[0]!.steps[0]!;
    apply(s, { type: 'step-start', step: a1, argv: [], logFile: '' }, 1000);
    // Before any batch: the earlier run's 60 s, less the 1 s run so far.
    assert.equal(stepLeftMs(s.projects.get('a')!.current!, 2000), 59_000);
    apply(s, { type: 'step-needed', step: a1, count: 1000 }, 1000);
    apply(s, { type: 'step-batch', step: a1, attempt: 1, exitCode: 1, remaining: 900 }, 3000);
    // 100 rows in 2 s: 900 rows left take 18 s, and 1 s has passed since.
    assert.equal(stepLeftMs(s.projects.get('a')!.current!, 4000), 17_000);
    assert.equal(projectLeftMs(s.projects.get('a')!, 4000), 21_000);
    assert.equal(runLeftMs(s, 4000), 23_000, 'one project after another');
    s.parallel = 2;
    assert.equal(runLeftMs(s, 4000), 21_000, 'side by side: the longest project');
  });

  test('a step without an earlier run makes the ETA unknown, not zero; a failure does not advance the bar', () => {
    const s = initialState(0);
    const e = plannedEvent({ 'kilo/a/1': 1000 });
    apply(s, e, 0);
    assert.equal(runLeftMs(s, 0), undefined);
    const b1 = e.preflight.plan.projects[1]!.steps[0]!;
    apply(s, { type: 'step-start', step: b1, argv: [], logFile: '' }, 0);
    apply(s, { type: 'step-end', step: b1, status: 'failed', durationMs: 1500, attempts: 1, message: 'exited 3' }, 1500);
    apply(s, { type: 'run-end', runId: 1, status: 'failed' }, 1600);
    const lines = frame(s, 2000, { columns: 100, color: false });
    assert.match(lines[0]!, /^- a +\[░{16}\] 0\/2 .*not started$/);
    assert.match(lines[1]!, /^✗ b +\[░{16}\] 0\/1 +0:02 +FAILED: kilo sync exited 3$/);
    assert.match(lines[2]!, /^run failed after 0:02$/);
    assert.ok(!lines.join('\n').includes('\x1b['), 'no escape sequence without colour');
    const coloured = frame(s, 2000, { columns: 100, color: true });
    assert.ok(coloured[1]!.startsWith('\x1b[31m✗\x1b[0m'), 'a failure is red');
  });

  test('rows are cut to the terminal, colour follows NO_COLOR and --no-color, wrapped rows are counted', () => {
    const s = initialState(0);
    apply(s, plannedEvent({}), 0);
    for (const l of frame(s, 0, { columns: 30, color: true })) assert.ok(rowsOf(l, 30) === 1, `fits: ${l}`);
    assert.equal(wantColor(true, {}), true);
    assert.equal(wantColor(true, { NO_COLOR: '1' }), false);
    assert.equal(wantColor(true, { NO_COLOR: '' }), true, 'an empty NO_COLOR is not set (no-color.org)');
    assert.equal(wantColor(false, {}), false);
    assert.equal(rowsOf('x'.repeat(80), 80), 1);
    assert.equal(rowsOf(`\x1b[31m${'x'.repeat(81)}\x1b[0m`, 80), 2);
  });

  test('the screen redraws every row at every redraw, a logged line above them, over as many rows as the last picture took', () => {
    const out: string[] = [];
    const sc = screen((t) => out.push(t), () => 20);
    sc.draw(['a row', 'b row', `logs: ${'x'.repeat(30)}`]);
    sc.log('snapshot line');
    sc.draw(['a row', 'b row 2', `logs: ${'x'.repeat(30)}`]);
    sc.close();
    // The logs line took two rows of 20 columns: four rows to go up and erase.
    assert.equal(out[1], `\x1b[4A\r\x1b[Jsnapshot line\na row\nb row\nlogs: ${'x'.repeat(30)}\n`);
    assert.equal(out[2], `\x1b[4A\r\x1b[Ja row\nb row 2\nlogs: ${'x'.repeat(30)}\n`);
    assert.ok(out[0]!.startsWith('\x1b[?25l') && out[3] === '\x1b[?25h', 'the cursor is hidden, then shown again');
  });

  test('in a pipe, a data step prints at most one line per interval, with its ETA', () => {
    const lines: string[] = [];
    let now = 0;
    const r = lineRenderer((l) => lines.push(l), () => now);
    const e = plannedEvent({});
    r.on(e);
    const a1 = e.preflight.plan.projects[0]!.steps[0]!;
    r.on({ type: 'step-start', step: a1, argv: ['x'], logFile: '' });
    r.on({ type: 'step-needed', step: a1, count: 10_000 });
    for (let i = 1; i <= 100; i++) {
      now = i * 200;
      r.on({ type: 'step-batch', step: a1, attempt: i, exitCode: 1, remaining: 10_000 - i * 50 });
    }
    const batches = lines.filter((l) => / run \d+: exit/.test(l));
    assert.equal(batches.length, Math.floor((100 * 200) / BATCH_LINE_MS));
    assert.match(batches[0]!, /run 25: exit 1, 8750 left, step ETA 0:35$/);
  });
});

/** The fake cloud's chain, slowed: every step sleeps first, and the flavor migration moves 10 rows a run. */
function slowChain(cloud: Cloud, opts: { fail?: boolean } = {}): string {
  return cloud.variant(opts.fail ? 'failing' : 'slow', (c) => {
    for (const r of c.releases) {
      for (const s of r.steps) {
        const key = ['sync', 'data', 'check'].find((k) => s[k]);
        const flavor = s.name === 'migrate flavor data';
        s[key!] = ['sh', '-c', `sleep ${flavor ? 0.1 : 0.15}; exec "$@"`, 'sh', ...(s[key!] as string[]).map((a) => (flavor && a === '50' ? '10' : a))];
        if (flavor) s.batch = 10;
        if (opts.fail && r.release === 'liberty' && s.project === 'image') s[key!] = ['sh', '-c', 'sleep 1; echo broken >&2; exit 3'];
      }
    }
  });
}

const STEP_START = /^\d\d:\d\d:\d\d (\S+) (sync|data|check) \[/;
const STEP_END = /^\d\d:\d\d:\d\d (\S+) (succeeded|skipped|FAILED|INTERRUPTED) in /;

describe('progress of a real run', () => {
  let history: Cloud;
  let piped: CliResult;
  let pipedMs: number;
  before(async () => {
    history = await fakeCloud({ instances: 300 });
    const t0 = Date.now();
    piped = await leapfrog(['run', ...history.args(slowChain(history))]);
    pipedMs = Date.now() - t0;
  });

  test('in a pipe: a line per step start and end, a data step\'s runs thinned to one line every few seconds, the logs named', () => {
    assert.equal(piped.exitCode, 0, piped.stderr);
    const lines = piped.stderr.trim().split('\n');
    const starts = lines.filter((l) => STEP_START.test(l)).map((l) => STEP_START.exec(l)![1]);
    const ends = lines.filter((l) => STEP_END.test(l)).map((l) => STEP_END.exec(l)![1]);
    assert.equal(starts.length, 22);
    assert.deepEqual(ends, starts, 'every step that starts ends, once');
    const runs = Number(/kilo\/compute\/3 succeeded in [^(]*\((\d+) runs\)/.exec(piped.stderr)?.[1]);
    assert.ok(runs >= 25, `the flavor migration ran in many batches (${runs})`);
    const batchLines = lines.filter((l) => /kilo\/compute\/3 run \d+: exit/.test(l));
    assert.ok(batchLines.length <= Math.ceil(pipedMs / BATCH_LINE_MS), `${batchLines.length} batch lines in ${pipedMs} ms, for ${runs} runs`);
    // Everything else: the plan summary, snapshot, checkpoints, run start and end.
    assert.ok(lines.length <= 2 * 22 + batchLines.length + 12 + 12, `${lines.length} lines:\n${piped.stderr}`);
    assert.match(piped.stderr, /run 1: 22 steps over 12 hops; logs in \S+\/runs\/1\/logs; no earlier run of this chain/);
    assert.match(piped.stderr, /; run \d+:\d\d elapsed, ETA /);
    assert.match(piped.stderr, /run 1 succeeded after \d+:\d\d; logs in \S+\/runs\/1\/logs/);
  });

  describe('on a terminal (tmux)', () => {
    const dir = tempDir('tmux');
    const socket = path.join(dir, 'tmux.sock');
    const tmux = (...args: string[]) => execFileSync('tmux', ['-S', socket, ...args], { encoding: 'utf8' });
    const quote = (a: string) => `'${a.replace(/'/g, "'\\''")}'`;
    /** A session running `leapfrog ARGS` in a terminal of 110 x 45, then saying how it exited. */
    const start = (name: string, args: readonly string[], env: Record<string, string> = {}) => {
      const cmd = ['env', '-u', 'NO_COLOR', ...Object.entries(env).map(([k, v]) => `${k}=${v}`), process.execPath, path.join(ROOT, 'bin', 'leapfrog.js'), ...args].map(quote).join(' ');
      tmux('new-session', '-d', '-s', name, '-x', '110', '-y', '45', `${cmd}; echo "[exit $?]"; sleep 600`);
    };
    const shown = (name: string, escapes = false) => tmux('capture-pane', '-p', '-J', ...(escapes ? ['-e'] : []), '-t', name);
    const scrollback = (name: string) => tmux('capture-pane', '-p', '-J', '-S', '-', '-t', name);
    const exited = (name: string) => eventually(`${name} to end`, () => /^\[exit (\d+)\]$/m.exec(shown(name))?.[1], 120_000);
    const row = (project: string) => new RegExp(`^(\\S) ${project} +\\[[█░]{16}\\] +\\d+/\\d+ `, 'm');

    before(() => {
      try {
        execFileSync('tmux', ['-V']);
      } catch {
        throw new Error('these tests drive a real terminal with tmux: apt-get install tmux (.ci/run installs it)');
      }
    });
    after(() => {
      try {
        tmux('kill-server');
      } catch {
        // no server was started
      }
    });

    test('every project has its row at every capture, with elapsed and an ETA from the earlier run; Ctrl-C leaves one clean, marked picture', async () => {
      const cloud = await fakeCloud({ instances: 300 });
      // The same state directory: the earlier run of the chain is the estimate.
      const args = [...cloud.args(slowChain(cloud)).map((a) => (a === cloud.state ? history.state : a)), '--snapshot', 'every-hop'];
      start('slow', ['run', ...args]);
      const captures: string[] = [];
      await eventually('the flavor migration to run a few batches', async () => {
        const s = shown('slow');
        if (/elapsed \d+:\d\d/.test(s)) captures.push(s);
        await new Promise((r) => setTimeout(r, 300));
        return /migrate flavor data: run ([5-9]|\d\d)/.test(s) && captures.length >= 4 ? true : undefined;
      }, 90_000);
      for (const c of captures) {
        for (const p of ['compute', 'identity', 'image']) assert.match(c, row(p), `a row for ${p} in:\n${c}`);
        assert.match(c, /^run 2 {2}elapsed \d+:\d\d {2}ETA (\d+:\d\d \(from run 1|\?)/m);
        assert.match(c, /^logs: \S+\/runs\/2\/logs$/m);
      }
      assert.ok(captures.some((c) => /ETA \d+:\d\d \(from run 1/.test(c)), 'the run ETA comes from run 1');
      const last = captures[captures.length - 1]!;
      assert.match(last, /^▸ compute +\[[█░]+\] \d+\/10 +\d+:\d\d +ETA \d+:\d\d +kilo data migrate flavor data: run \d+, \d+ left, \d+(\.\d)?\/s$/m);
      assert.match(shown('slow', true), /\x1b\[36m▸/, 'a running project is coloured');
      assert.equal(tmux('display-message', '-p', '-t', 'slow', '#{cursor_flag}').trim(), '0', 'the cursor is hidden while the picture redraws');

      tmux('send-keys', '-t', 'slow', 'C-c');
      assert.equal(await exited('slow'), '130');
      const end = scrollback('slow');
      assert.match(end, /^SIGINT: stopping at a safe point/m);
      assert.match(end, /^! compute +\[[█░]+\] +\d+\/10 +\d+:\d\d +INTERRUPTED: kilo data migrate flavor data$/m);
      assert.match(end, /^- identity +\[[█░]+\] +\d+\/8 .*(not started|stopped after)/m);
      assert.match(end, /^run 2 interrupted after \d+:\d\d$/m);
      // Clean: one picture in the whole scrollback, nothing left running, no stray escape, the cursor back.
      for (const p of ['compute', 'identity', 'image']) assert.equal(end.match(new RegExp(row(p).source, 'gm'))?.length, 1, `one row for ${p}:\n${end}`);
      assert.doesNotMatch(end, /^▸/m);
      assert.doesNotMatch(end, /\x1b|\^C/);
      assert.match(shown('slow', true), /\x1b\[33m!/, 'an interruption is yellow');
      assert.equal(tmux('display-message', '-p', '-t', 'slow', '#{cursor_flag}').trim(), '1', 'the cursor is shown again');
    });

    test('a failed step is marked, in red, or without colour under --no-color; the other projects say they stopped', async () => {
      const coloured = await fakeCloud();
      const plain = await fakeCloud();
      start('red', ['run', ...coloured.args(slowChain(coloured, { fail: true })), '--parallel', '3']);
      start('plain', ['run', ...plain.args(slowChain(plain, { fail: true })), '--parallel', '3', '--no-color']);
      assert.equal(await exited('red'), '1');
      assert.equal(await exited('plain'), '1');
      for (const name of ['red', 'plain']) {
        const s = scrollback(name);
        assert.match(s, /^✗ image +\[█{4}░{12}\] 1\/4 +0:01 +FAILED: liberty sync exited 3$/m);
        assert.match(s, /^- compute +\[[█░]+\] +\d+\/10 +(not started|stopped after \d+ of 10 steps)$/m);
        assert.match(s, /^run 1 failed after \d+:\d\d$/m);
        assert.match(s, /^logs: \S+\/runs\/1\/logs$/m);
      }
      assert.match(shown('red', true), /\x1b\[31m✗/);
      assert.doesNotMatch(shown('plain', true), /\x1b\[3\dm/, '--no-color: no colour, the marks stay');
    });
  });
});
