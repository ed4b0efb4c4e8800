import { chmod, mkdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Plan, PlannedStep } from '../chain/plan.js';
import type { PreparedStep } from '../chain/argv.js';
import { renderConfig } from '../chain/template.js';
import type { EnvDef, Version } from '../chain/types.js';
import { provisionAll } from '../envs/cache.js';
import type { ProvisionedEnv } from '../envs/store.js';
import { LeapfrogError } from '../errors.js';
import { probeAll } from '../database/probe.js';
import { describePlacement } from '../database/placement.js';
import { configRenderings, emptyDir, projectAddresses, runDir } from '../core/layout.js';
import { LEAPFROG_VERSION } from '../version.js';
import { takeSnapshot } from './checkpoint.js';
import { asRunError, type RunContext, type RunResult } from './context.js';
import { schedule } from './schedule.js';
import { snapshotPlan } from './snapshot-plan.js';
import { makeDirs } from '../dirs.js';

/** Executing a plan: envs first, then the run's row, configs, the first snapshot, the lanes; the run's end always recorded. */

/** Parallel downloads when a run finds envs missing (`envs provision --parallel` for more). */
const PROVISION_PARALLEL = 4;

/** Fetch/unpack every env the steps need, before the run starts; every failure reported together. */
export async function provisionFor(ctx: Pick<RunContext, 'envs' | 'layout' | 'emit' | 'provision' | 'signal'>, steps: readonly PlannedStep[]): Promise<Map<string, ProvisionedEnv>> {
  const defs: EnvDef[] = [];
  for (const name of new Set(steps.map((s) => s.step.env))) {
    const def = ctx.envs.get(name);
    if (!def) throw new LeapfrogError('input', `env ${name} is used by the chain but was not loaded`);
    defs.push(def);
  }
  const { done, failed } = await provisionAll(
    defs,
    ctx.layout.cacheDir,
    PROVISION_PARALLEL,
    { ...ctx.provision, signal: ctx.signal, onProgress: (e, p) => ctx.emit({ type: 'env-progress', env: e, bytes: p.bytes, total: p.total }) },
    (def, r) => {
      if (!(r instanceof LeapfrogError)) ctx.emit({ type: 'env', env: def.name, cached: r.cached, root: r.root });
    },
  );
  if (failed.length === 1) throw failed[0]!;
  if (failed.length > 1) {
    // One kind for all (every env input, or every env refused as changed) keeps its exit code; a mix is unexpected.
    const kind = failed.every((f) => f.kind === failed[0]!.kind) && (failed[0]!.kind === 'input' || failed[0]!.kind === 'refused') ? failed[0]!.kind : 'unexpected';
    throw new LeapfrogError(kind, `${failed.length} envs could not be provisioned; nothing was run:`, { details: failed.flatMap((f) => [f.message, ...f.details.map((d) => `  ${d}`)]) });
  }
  // Two env names may share one tarball: one tree, each with its own definition (path, vars).
  const bySha = new Map(done.map((p) => [p.sha256, p]));
  return new Map(defs.map((d) => [d.name, { ...bySha.get(d.source.sha256)!, def: d }]));
}

export async function executePlan(ctx: RunContext, plan: Plan, prepared: readonly PreparedStep[], until: string | undefined): Promise<RunResult> {
  const { chain, ledger, layout, target } = ctx;
  const envs = await provisionFor(ctx, prepared);

  const runId = ledger.startRun({
    chain: chain.name,
    chainSha256: chain.sha256,
    target: describePlacement(target),
    kind: ctx.kind ?? 'run',
    until,
    host: os.hostname(),
    pid: process.pid,
    version: LEAPFROG_VERSION,
    snapshot: ctx.snapshot ?? 'none',
  });
  const dir = runDir(layout, runId);
  const dirs = { logs: path.join(dir, 'logs'), home: path.join(dir, 'home'), tmp: path.join(dir, 'tmp'), work: path.join(dir, 'work') };

  let failure: LeapfrogError | undefined;
  try {
    for (const n of ctx.notes ?? []) ledger.note(runId, n);
    if (ctx.prediction) ledger.predicted(runId, ctx.prediction.hops.map((h) => ({ project: h.project, release: h.release, ms: h.ms, source: h.from, model: h.model ?? [] })));
    for (const d of Object.values(dirs)) makeDirs(d, '--state-dir');
    ctx.emit({ type: 'run-start', runId, plan, runDir: dir });
    await renderConfigs(ctx, new Set(prepared.map((p) => p.step.project)));
    // The plan's snapshots (snapshot-plan.ts): those before any lane starts are taken here, the rest by their lane.
    const snapshots = snapshotPlan(chain, prepared, ctx.snapshot ?? 'none');
    for (const s of snapshots.filter((x) => x.project === undefined)) await takeSnapshot(ctx, runId, dir, s.databases, s.beforeStep);
    failure = await schedule(ctx, runId, prepared, envs, dirs, dir, snapshots.filter((x) => x.project !== undefined));
  } catch (err) {
    failure = asRunError(err, layout.stateDir);
  }
  const status = failure === undefined ? 'succeeded' : failure.kind === 'interrupted' ? 'interrupted' : 'failed';
  try {
    ledger.finishRun(runId, status, failure?.message);
  } catch (err) {
    // The ledger cannot take the run's end (a full disk): the run row stays
    // `running`, which the next run treats as a crash: the truth.
    failure ??= asRunError(err, layout.stateDir);
  }
  let versions: Record<string, Record<string, Version>> = {};
  try {
    versions = await probeAll(ctx.session, chain);
  } catch {
    // The run's own error is the one worth reporting.
  }
  ctx.emit({ type: 'run-end', runId, status });
  let steps: RunResult['steps'] = [];
  let snapshots: RunResult['snapshots'] = [];
  try {
    steps = ledger.steps(runId);
    snapshots = ledger.snapshots(runId);
  } catch {
    // A ledger that cannot be read now (a full disk) still has the rows on disk.
  }
  return { runId, target: describePlacement(target), status, versions, error: failure, runDir: dir, ledgerFile: ledger.file, steps, snapshots, snapshotMode: ctx.snapshot ?? 'none' };
}

async function renderConfigs(ctx: RunContext, projects: ReadonlySet<string>): Promise<void> {
  // {{ empty_dir }}: made afresh, empty and read-only, so no step finds there what an earlier one left.
  const empty = emptyDir(ctx.layout);
  makeDirs(path.dirname(empty), '--state-dir');
  await rm(empty, { recursive: true, force: true });
  await mkdir(empty, { mode: 0o555 });
  await chmod(empty, 0o555);
  for (const project of projects) {
    const def = ctx.chain.projects[project]!;
    const addresses = projectAddresses(ctx.chain, ctx.session, project);
    for (const { file, dest, cell } of configRenderings(ctx.layout, ctx.chain, project)) {
      makeDirs(path.dirname(dest), '--state-dir');
      // The file may hold the database password: owner-only, even if it existed before.
      await writeFile(dest, renderConfig(ctx.chain, def, file, addresses, cell), { mode: 0o600 });
      await chmod(dest, 0o600);
    }
  }
}
