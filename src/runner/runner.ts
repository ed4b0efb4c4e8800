import { chmod, mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Plan, PlannedStep } from '../chain/plan.js';
import { renderArgv, renderConfig } from '../chain/template.js';
import type { Chain, EnvDef, Version } from '../chain/types.js';
import { compareToExpectation, formatVersion, versionToJson } from '../chain/version.js';
import { versionOrder } from '../chain/plan.js';
import { provisionAll } from '../envs/cache.js';
import type { ProvisionedEnv, ProvisionOptions } from '../envs/store.js';
import { LeapfrogError } from '../errors.js';
import type { Ledger } from '../ledger/ledger.js';
import { runStepProcess, type StepOutcome } from '../sandbox/run-step.js';
import { fingerprint, type SchemaShape } from '../database/fingerprint.js';
import { snapshotDatabase } from '../database/snapshot.js';
import { pauseAt } from './pause.js';
import { neededCount, probeAll, probeProject } from '../database/probe.js';
import type { TargetSession } from '../database/session.js';
import { describeTarget, type Target } from '../database/url.js';
import type { EventSink } from './events.js';
import { configPaths, projectAddresses, runDir, type Layout } from './layout.js';
import { LEAPFROG_VERSION } from '../version.js';

/**
 * Executing a plan: one lane per project (steps in order), up to `parallel`
 * lanes at once, cross-project `after:` edges honoured; every step recorded
 * in the ledger before and after its child runs, every sync verified by
 * probing, and a checkpoint after every hop.
 */

export interface PreparedStep extends PlannedStep {
  argv: readonly string[];
}

/** Render every planned step's argv; template errors surface before anything runs. */
export function prepare(chain: Chain, plan: Plan, target: Target, l: Layout): PreparedStep[] {
  return plan.steps.map((p) => ({
    ...p,
    argv: renderArgv(chain, p.step, projectAddresses(chain, target, p.step.project), configPaths(l, chain, p.step.project)),
  }));
}

export interface RunContext {
  chain: Chain;
  envs: ReadonlyMap<string, EnvDef>;
  target: Target;
  layout: Layout;
  ledger: Ledger;
  session: TargetSession;
  parallel: number;
  emit: EventSink;
  signal?: AbortSignal | undefined;
  /** How envs are fetched: timeouts, limits, --offline. */
  provision?: ProvisionOptions | undefined;
  /** Argv prefix that runs each step in a new network namespace (--isolate-network). */
  stepWrapper?: readonly string[] | undefined;
  kind?: 'run' | 'rehearsal';
  /** Lines to record on the run (a resumed crash, accepted drift, lost history). */
  notes?: readonly string[] | undefined;
  /** When to snapshot the databases: before the run's first step, before every hop, or never. */
  snapshot?: SnapshotMode | undefined;
}

export type SnapshotMode = 'first-hop' | 'every-hop' | 'none';
export const SNAPSHOT_MODES: readonly SnapshotMode[] = ['first-hop', 'every-hop', 'none'];

export interface RunResult {
  runId: number;
  status: 'succeeded' | 'failed' | 'interrupted';
  versions: Record<string, Record<string, Version>>;
  error: LeapfrogError | undefined;
  runDir: string;
}

/** Parallel downloads when a run finds envs missing (`envs provision --parallel` for more). */
const PROVISION_PARALLEL = 4;

/** Fetch/unpack every env the steps need, before the run starts; every failure reported together. */
export async function provisionFor(ctx: Pick<RunContext, 'envs' | 'layout' | 'emit' | 'provision'>, steps: readonly PlannedStep[]): Promise<Map<string, ProvisionedEnv>> {
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
    { ...ctx.provision, onProgress: (e, p) => ctx.emit({ type: 'env-progress', env: e, bytes: p.bytes, total: p.total }) },
    (def, r) => {
      if (!(r instanceof LeapfrogError)) ctx.emit({ type: 'env', env: def.name, cached: r.cached, root: r.root });
    },
  );
  if (failed.length === 1) throw failed[0]!;
  if (failed.length > 1) {
    throw new LeapfrogError(failed.every((f) => f.kind === 'input') ? 'input' : 'unexpected', `${failed.length} envs could not be provisioned; nothing was run:`, { details: failed.map((f) => f.message) });
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
    target: describeTarget(target),
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
    for (const d of Object.values(dirs)) await mkdir(d, { recursive: true, mode: 0o700 });
    ctx.emit({ type: 'run-start', runId, plan, runDir: dir });
    await renderConfigs(ctx, new Set(prepared.map((p) => p.step.project)));
    // Both modes start with every database: with every-hop, a project's first hop in this run
    // then needs no snapshot of its own (its databases have not changed since), and any
    // checkpoint of the run has, for every database, a snapshot at or before it.
    if (ctx.snapshot !== undefined && ctx.snapshot !== 'none' && prepared.length > 0) {
      const all = Object.values(chain.projects).flatMap((p) => Object.values(p.databases));
      await takeSnapshot(ctx, runId, dir, all, prepared[0]!.step.id);
    }
    failure = await schedule(ctx, runId, prepared, envs, dirs, dir);
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
  return { runId, status, versions, error: failure, runDir: dir };
}

async function renderConfigs(ctx: RunContext, projects: ReadonlySet<string>): Promise<void> {
  for (const project of projects) {
    const def = ctx.chain.projects[project]!;
    const paths = configPaths(ctx.layout, ctx.chain, project);
    const addresses = projectAddresses(ctx.chain, ctx.target, project);
    for (const [file, dest] of Object.entries(paths)) {
      await mkdir(path.dirname(dest), { recursive: true, mode: 0o700 });
      // The file may hold the database password: owner-only, even if it existed before.
      await writeFile(dest, renderConfig(ctx.chain, def, file, addresses), { mode: 0o600 });
      await chmod(dest, 0o600);
    }
  }
}

interface Dirs {
  logs: string;
  home: string;
  tmp: string;
  work: string;
}

async function schedule(ctx: RunContext, runId: number, prepared: readonly PreparedStep[], envs: Map<string, ProvisionedEnv>, dirs: Dirs, runDirectory: string): Promise<LeapfrogError | undefined> {
  // --snapshot every-hop: before the first step of each later hop of a project, that project's
  // databases (its lane is waiting, so they are still); its first hop is covered by the run's first snapshot.
  const hopStarts = new Set<PreparedStep>();
  const seen = new Set<string>();
  const started = new Set<string>();
  for (const p of prepared) {
    if (seen.has(hopKey(p))) continue;
    seen.add(hopKey(p));
    if (started.has(p.step.project)) hopStarts.add(p);
    started.add(p.step.project);
  }
  const lanes = new Map<string, PreparedStep[]>();
  for (const p of prepared) (lanes.get(p.step.project) ?? lanes.set(p.step.project, []).get(p.step.project)!).push(p);
  const remaining = new Map<string, number>();
  for (const p of prepared) remaining.set(hopKey(p), (remaining.get(hopKey(p)) ?? 0) + 1);
  const order = new Map(prepared.map((p, i) => [p, i]));

  const running = new Map<string, Promise<void>>();
  let failure: LeapfrogError | undefined;
  let seq = 0;
  const limit = Math.max(1, ctx.parallel);

  const ready = (p: PreparedStep) => p.step.after.every((a) => (remaining.get(`${a.project}@${a.release}`) ?? 0) === 0);

  for (;;) {
    if (failure === undefined && ctx.signal?.aborted) failure = interrupted();
    if (failure === undefined) {
      const heads = [...lanes.entries()]
        .filter(([project, steps]) => steps.length > 0 && !running.has(project))
        .map(([, steps]) => steps[0]!)
        .filter(ready)
        .sort((a, b) => order.get(a)! - order.get(b)!);
      for (const p of heads) {
        if (running.size >= limit) break;
        lanes.get(p.step.project)!.shift();
        const n = ++seq;
        running.set(
          p.step.project,
          (async () => {
            if (ctx.snapshot === 'every-hop' && hopStarts.has(p)) {
              await takeSnapshot(ctx, runId, runDirectory, Object.values(ctx.chain.projects[p.step.project]!.databases), p.step.id);
            }
            await runOne(ctx, runId, p, n, envs.get(p.step.env)!, dirs);
            const key = hopKey(p);
            const left = remaining.get(key)! - 1;
            remaining.set(key, left);
            if (left === 0) await checkpoint(ctx, runId, p.step.project, p.step.release);
          })()
            .catch((err: unknown) => {
              failure ??= asRunError(err, ctx.layout.stateDir);
            })
            .finally(() => running.delete(p.step.project)),
        );
      }
    }
    if (running.size === 0) break;
    await Promise.race(running.values());
  }
  if (failure === undefined && [...lanes.values()].some((s) => s.length > 0)) {
    failure = new LeapfrogError('unexpected', 'steps were left waiting on after: edges that never completed');
  }
  return failure;
}

/** Errors of the state directory's disk, said plainly: they are the operator's to fix, and the run can be resumed. */
const DISK_FULL = new Set(['ENOSPC', 'EDQUOT', 'SQLITE_FULL']);

function asRunError(err: unknown, stateDir: string): LeapfrogError {
  if (err instanceof LeapfrogError) return err;
  const code = (err as { code?: string }).code;
  if (code !== undefined && DISK_FULL.has(code)) {
    return new LeapfrogError(
      'unexpected',
      `the state directory ${stateDir} is full (${code}): leapfrog cannot record what it does, so it stopped. Free space there (or use another --state-dir with this ledger), then run again: the run resumes from the ledger.`,
      { cause: err },
    );
  }
  return new LeapfrogError('unexpected', (err as Error).message, { cause: err });
}

const hopKey = (p: PlannedStep) => `${p.step.project}@${p.step.release}`;
const interrupted = () => new LeapfrogError('interrupted', 'interrupted: stopped at a safe point; run again to resume');

function describeOutcome(o: StepOutcome, timeoutMs: number): string {
  if (o.spawnError) return `could not start (${o.spawnError})`;
  if (o.timedOut) return `timed out after ${Math.round(timeoutMs / 1000)} s`;
  if (o.signal) return `was killed by ${o.signal}`;
  return `exited ${o.exitCode}`;
}

async function runOne(ctx: RunContext, runId: number, p: PreparedStep, seq: number, env: ProvisionedEnv, dirs: Dirs): Promise<void> {
  const { step } = p;
  const secrets = ctx.target.kind === 'mysql' && ctx.target.password ? [ctx.target.password] : [];
  const logFile = path.join(dirs.logs, `${String(seq).padStart(3, '0')}-${step.id.replace(/\//g, '-')}.log`);
  pauseAt('step-start', step.id);
  const rowId = ctx.ledger.stepStarted({
    runId,
    stepId: step.id,
    project: step.project,
    release: step.release,
    kind: step.kind,
    env: step.env,
    envSha256: env.sha256,
    command: p.argv,
    logPath: logFile,
  });
  ctx.emit({ type: 'step-start', step: p, argv: p.argv, logFile });
  const started = performance.now();
  let attempts = 0;
  let last: StepOutcome | undefined;
  const tail = () => (last?.tail ?? []).join('\n');
  const finish = (status: 'succeeded' | 'failed' | 'interrupted' | 'skipped', message?: string) => {
    const durationMs = performance.now() - started;
    ctx.ledger.stepFinished(rowId, { status, exitCode: last?.exitCode ?? null, durationMs, attempts, logTail: tail(), error: message });
    ctx.emit({ type: 'step-end', step: p, status, durationMs, attempts, message });
  };
  const fail = (message: string): never => {
    finish('failed', message);
    throw new LeapfrogError('step-failed', `step ${step.id} (${step.kind} in env ${step.env}) ${message}`, {
      details: [`log: ${logFile}`, ...(last?.tail.length ? ['last lines:', ...last.tail.map((l) => '  ' + l)] : [])],
    });
  };
  const exec = async (): Promise<StepOutcome> => {
    last = await runStepProcess({
      argv: p.argv,
      shownArgv: p.argv,
      envRoot: env.root,
      envPath: env.def.path,
      envVars: Object.fromEntries(Object.entries(env.def.vars).map(([k, v]) => [k, v.replace(/\{\{\s*root\s*\}\}/g, env.root)])),
      cwd: dirs.work,
      home: dirs.home,
      tmp: dirs.tmp,
      logFile,
      timeoutMs: step.timeoutMs,
      secrets,
      signal: ctx.signal,
      onSpawn: (pid) => {
        ctx.ledger.stepPid(rowId, pid);
        pauseAt('step-child', step.id);
      },
      wrapper: ctx.stepWrapper,
    });
    pauseAt('step-end', step.id);
    attempts++;
    if (ctx.signal?.aborted) {
      finish('interrupted', 'interrupted by a signal');
      throw interrupted();
    }
    return last;
  };

  try {
    if (step.kind === 'data') {
      const dbName = step.neededWhen ? ctx.chain.projects[step.project]!.databases[step.neededWhen.database]! : undefined;
      // When the step is about to run, its query must work: an error here is a chain mistake, not "nothing to do".
      const needed = async (): Promise<number | undefined> => {
        if (!dbName || !step.neededWhen) return undefined;
        try {
          return await neededCount(ctx.session, dbName, step.neededWhen.query);
        } catch (err) {
          return fail(`cannot evaluate its needed-when query on ${dbName}: ${(err as Error).message}. Fix the query in ${ctx.chain.file}`);
        }
      };
      let count = await needed();
      if (count === 0) {
        finish('skipped', 'not needed: its needed-when query returns 0');
        return;
      }
      for (;;) {
        if (attempts >= step.maxRuns) {
          fail(`still has work after ${attempts} runs (max-runs ${step.maxRuns})${count !== undefined ? `: needed-when returns ${count}` : ''}; raise max-runs in the chain if the data is that large, or read the log`);
        }
        const o = await exec();
        const more = step.repeatWhileExit !== undefined && o.exitCode === step.repeatWhileExit;
        if (o.exitCode !== 0 && !more) fail(describeOutcome(o, step.timeoutMs));
        const before = count;
        count = await needed();
        ctx.emit({ type: 'step-batch', step: p, attempt: attempts, exitCode: o.exitCode, remaining: count });
        if (!more) {
          if (count === undefined || count === 0) break;
          if (before !== undefined && count >= before) {
            fail(`exited 0 but made no progress: its needed-when query still returns ${count}. The command is not doing the work the chain expects of it (busy rows? wrong env?)`);
          }
        }
        // Another batch follows: record how many ran, so a crash mid-loop leaves the truth behind.
        ctx.ledger.stepAttempt(rowId, attempts);
        pauseAt('data-batch', step.id);
      }
      finish('succeeded');
      return;
    }

    const o = await exec();
    if (o.exitCode !== 0) fail(describeOutcome(o, step.timeoutMs));
    if (step.kind === 'sync') {
      const project = ctx.chain.projects[step.project]!;
      const versions = await probeProject(ctx.session, project);
      const wrong = Object.entries(step.expect).filter(([db, e]) => compareToExpectation(versions[db] ?? { kind: 'absent' }, e, versionOrder(ctx.chain, project, db)) !== 'equal');
      if (wrong.length > 0) {
        fail(
          `exited 0, but ${wrong.map(([db, e]) => `${db} is at ${formatVersion(versions[db] ?? { kind: 'absent' })}, not ${formatVersion(e)}`).join('; ')}: the toolchain did not do what the chain declares; stopping before anything else runs on it`,
        );
      }
    }
    finish('succeeded');
  } catch (err) {
    if (err instanceof LeapfrogError) throw err;
    try {
      finish('failed', (err as Error).message);
    } catch {
      // The ledger itself failed (a full disk): the step stays `started`, the truth for the next run.
    }
    const e = asRunError(err, ctx.layout.stateDir);
    throw new LeapfrogError(e.kind, `step ${step.id}: ${e.message}`, { cause: err, details: [`log: ${logFile}`] });
  }
}

/**
 * Snapshot `databases` (in parallel) and record each in the ledger with where
 * the ledger stood, so `rollback --to CHECKPOINT` can find it. The session's
 * connections to them are closed first: a SQLite copy wants no other handle.
 */
async function takeSnapshot(ctx: RunContext, runId: number, runDirectory: string, databases: readonly string[], beforeStep: string): Promise<void> {
  const position = ctx.ledger.position();
  const dir = path.join(runDirectory, 'snapshots', `${String(position.step).padStart(6, '0')}-before-${beforeStep.replace(/\//g, '-')}`);
  const started = performance.now();
  for (const d of databases) await ctx.session.release(d);
  ctx.emit({ type: 'snapshot-start', beforeStep, databases, dir });
  const taken = await Promise.all(
    databases.map(async (database) => {
      const t0 = performance.now();
      const f = await snapshotDatabase(ctx.session, database, dir, { level: SNAPSHOT_GZIP_LEVEL });
      return { ...f, durationMs: performance.now() - t0 };
    }),
  );
  pauseAt('snapshot', beforeStep);
  for (const f of taken) {
    ctx.ledger.snapshot({ runId, chain: ctx.chain.name, target: describeTarget(ctx.target), database: f.database, beforeStep, position, file: f.file, sha256: f.sha256, bytes: f.bytes, durationMs: f.durationMs });
  }
  ctx.emit({ type: 'snapshot', beforeStep, databases: taken, durationMs: performance.now() - started });
}

/** gzip level of snapshots: 1 keeps a dump's throughput close to the server's (bench/snapshot.ts); dumps of SQL text still shrink several-fold. */
export const SNAPSHOT_GZIP_LEVEL = 1;

async function checkpoint(ctx: RunContext, runId: number, project: string, release: string): Promise<void> {
  const def = ctx.chain.projects[project]!;
  const versions = await probeProject(ctx.session, def);
  const fingerprints: Record<string, string | null> = {};
  const shapes: Record<string, SchemaShape | null> = {};
  for (const [db, name] of Object.entries(def.databases)) {
    const f = await fingerprint(ctx.session, name);
    fingerprints[db] = f?.sha256 ?? null;
    shapes[db] = f?.shape ?? null;
  }
  const plain = Object.fromEntries(Object.entries(versions).map(([db, v]) => [db, versionToJson(v)]));
  pauseAt('checkpoint', `${release}/${project}`);
  ctx.ledger.checkpoint({ runId, project, release, versions: plain, fingerprints, shapes });
  ctx.emit({ type: 'checkpoint', project, release, versions });
}
