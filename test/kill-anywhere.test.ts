/**
 * The kill-anywhere harness: rounds of `leapfrog run` on the fake cloud on
 * MariaDB, each SIGKILLed at a random moment (leapfrog alone, or leapfrog
 * and the step it runs, as an OOM killer or a lost host would), then driven
 * to the end the way the tool itself says: `run` again, and when it refuses
 * a half-applied step, the rollback command it names, then `run`. Every
 * round must end equal to a clean run (schema, CHECKSUM TABLE, row counts),
 * with no step left `started` and no refusal that names no way on.
 *
 *   LEAPFROG_KILL_ROUNDS=20 node --test dist/test/kill-anywhere.test.js
 *
 * CI runs a few rounds (the default); the seed is printed so that a failing
 * round can be replayed with LEAPFROG_KILL_SEED.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { test } from 'node:test';
import { execa } from 'execa';
import { prng } from '../fixtures/cloud-sql.js';
import { MARIADB_REQUIRED, ROOT, endState, fakeCloud, leapfrog, ledgerRows, namedRollback, withMariadb, type Cloud } from './helpers.js';

const ROUNDS = Number(process.env.LEAPFROG_KILL_ROUNDS ?? 3);
const SEED = Number(process.env.LEAPFROG_KILL_SEED ?? Date.now() % 1_000_000);
const CLOUD = { kind: 'mariadb' as const, instances: 120, nullUuids: 2 };
// The default snapshots (before each hop, the databases its syncs declare on MariaDB): what an operator gets.
const RUN = ['--wait-lock', '120'];

/** Until the chain's end, doing what leapfrog says: run again, or roll back to the point its refusal names and run. Returns what it did. */
async function driveToEnd(cloud: Cloud): Promise<string[]> {
  const did: string[] = [];
  for (let i = 0; i < 6; i++) {
    const r = await leapfrog(['run', ...cloud.args(), ...RUN]);
    if (r.exitCode === 0) return [...did, 'run: ok'];
    const named = namedRollback(r.stderr);
    assert.ok(r.exitCode === 3 && named, `run exited ${r.exitCode} without naming the step and a way on:\n${r.stderr}`);
    const { step, to } = named;
    const rb = await leapfrog(['rollback', ...cloud.args(), '--to', to, '--yes']);
    assert.equal(rb.exitCode, 0, rb.stderr);
    did.push(`refused (${step}), rolled back to ${to}`);
  }
  assert.fail(`no end after 6 tries: ${did.join('; ')}`);
}

test(`kill anywhere: ${ROUNDS} rounds of SIGKILL at a random moment on MariaDB, each driven to a clean run's end state (seed ${SEED})`, { timeout: 60_000 + ROUNDS * 120_000 }, async (t) => {
  try {
    await withMariadb(async () => {});
  } catch (err) {
    if (MARIADB_REQUIRED) throw err;
    t.skip(`no MariaDB server: ${(err as Error).message}`);
    return;
  }
  const clean = await fakeCloud(CLOUD);
  const t0 = performance.now();
  const r = await leapfrog(['run', ...clean.args(), ...RUN]);
  assert.equal(r.exitCode, 0, r.stderr);
  const cleanMs = performance.now() - t0;
  const reference = await endState(clean);
  await clean.dispose();

  // Seeded (the fixtures' mulberry32), so a failing round can be replayed.
  const rand = prng(SEED);
  const outcomes: string[] = [];
  for (let round = 1; round <= ROUNDS; round++) {
    const cloud = await fakeCloud(CLOUD);
    const delay = Math.round(rand() * cleanMs * 0.9);
    const withStep = rand() < 0.5;
    const child = execa(process.execPath, [path.join(ROOT, 'bin', 'leapfrog.js'), 'run', ...cloud.args(), ...RUN], { reject: false, stdin: 'ignore', forceKillAfterDelay: false });
    await new Promise((resolve) => setTimeout(resolve, delay));
    // The step running now, if any: its process group dies with leapfrog when `withStep`.
    const running = ledgerRowsIfAny(cloud.state, "SELECT step_id, pid FROM steps WHERE status = 'started' AND pid IS NOT NULL");
    child.kill('SIGKILL');
    if (withStep) for (const s of running) killGroup(s.pid as number);
    const first = await child;
    const what = `round ${round}: SIGKILL after ${delay} ms of ${Math.round(cleanMs)} (leapfrog${withStep ? ` and ${running.map((s) => s.step_id).join(', ') || 'no step'}` : ' alone'}; ${first.exitCode === 0 ? 'it had finished' : 'killed'})`;
    const did = await driveToEnd(cloud);
    assert.deepEqual(await endState(cloud), reference, `${what}: ${did.join('; ')}: the end state differs from a clean run's`);
    assert.deepEqual(ledgerRows(cloud.state, "SELECT step_id FROM steps WHERE status = 'started'"), [], `${what}: no step is left started`);
    outcomes.push(`${what} -> ${did.join('; ')}`);
    await cloud.dispose();
  }
  for (const o of outcomes) t.diagnostic(o);
});

function ledgerRowsIfAny(state: string, sql: string): Record<string, unknown>[] {
  try {
    return ledgerRows(state, sql);
  } catch {
    // No ledger yet: killed before the run opened it.
    return [];
  }
}

function killGroup(pid: number): void {
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // Already gone.
  }
}
