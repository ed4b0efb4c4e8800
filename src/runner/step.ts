import { existsSync, realpathSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import type { PreparedStep } from '../chain/argv.js';
import type { StepDef } from '../chain/types.js';
import { compareToExpectation, formatVersion } from '../chain/version.js';
import { versionOrder } from '../chain/position.js';
import type { ProvisionedEnv } from '../envs/store.js';
import { LeapfrogError } from '../errors.js';
import { neededCount, probeProject } from '../database/probe.js';
import { bwrapOptions, type Bind } from '../sandbox/bwrap.js';
import { runStepProcess, type StepOutcome, type StepProcess } from '../sandbox/run-step.js';
import { servers } from '../database/placement.js';
import { asRunError, interrupted, type Dirs, type RunContext } from './context.js';
import { evidenceWriter } from './evidence.js';
import { pauseAt } from './pause.js';

/** One step: recorded `started`, its child run (in batches for a data step), verified, recorded with its end. */

function describeOutcome(o: StepOutcome, timeoutMs: number): string {
  if (o.spawnError) return `could not start (${o.spawnError})`;
  if (o.timedOut) return `timed out after ${Math.round(timeoutMs / 1000)} s`;
  if (o.signal) return `was killed by ${o.signal}`;
  return `exited ${o.exitCode}`;
}

/**
 * What a step of a rootfs env sees of the host (sandbox/bwrap.ts): the run's
 * work, home and tmp directories, writable; the rendered config files,
 * read-only; the target's SQLite directories, writable, or a MySQL server's
 * socket file; the host's network unless --isolate-network gave the step its
 * own. Never the env cache, nor the state directory's ledger.
 */
function rootfsSandbox(ctx: RunContext, env: ProvisionedEnv, dirs: Dirs): StepProcess['rootfs'] {
  if (!ctx.bwrap) throw new LeapfrogError('unexpected', `env ${env.def.name} is a rootfs env but no working bwrap was found before the run`);
  const target = servers(ctx.target).flatMap((t) => (t.kind === 'sqlite' ? [{ path: t.dir, writable: true }] : t.socket ? [{ path: t.socket, writable: true }] : []));
  return {
    bwrap: ctx.bwrap,
    root: env.root,
    binds: [
      { path: dirs.work, writable: true },
      { path: dirs.home, writable: true },
      { path: dirs.tmp, writable: true },
      ...(existsSync(ctx.layout.configDir) ? [{ path: ctx.layout.configDir, writable: false }] : []),
      ...target,
      resolvConf(ctx.stepWrapper === undefined, dirs),
    ],
    network: ctx.stepWrapper === undefined,
    protect: [ctx.layout.cacheDir, path.join(ctx.layout.stateDir, 'ledger.sqlite3')],
  };
}

let resolvSeq = 0;

/**
 * The sandbox's /etc/resolv.conf, as container runtimes give one: a Debian
 * tree built by mmdebstrap has none (it is the building host's), and real
 * tools fail without it before doing anything: eventlet's greendns, which
 * keystone-manage imports through oslo.messaging, raises
 * NoResolverConfiguration at import when the file is missing or names no
 * nameserver (dnspython's read_resolv_conf). Sharing the host's network:
 * the host's file. In a network namespace of its own there is no resolver
 * to reach: a file naming the loopback, where nothing listens, so a lookup
 * fails at once instead of the import.
 */
export function resolvConf(network: boolean, dirs: Pick<Dirs, 'tmp'>): Bind {
  if (network && existsSync('/etc/resolv.conf')) return { path: '/etc/resolv.conf', from: realpathSync('/etc/resolv.conf'), writable: false };
  // In the run's directory, beside (never inside) the directories a step may write: a step
  // cannot swap it for a link to a host file that the next step's bind would show it.
  // Written anew for each step, never through what is at the name (a stale run
  // directory's, or a plain env's step, which runs unconfined): bwrap's bind follows a link.
  // A new file renamed over the name (rename replaces a link, not what it names), so a step
  // of another project starting at the same moment (--parallel) never finds the name empty.
  const file = path.join(path.dirname(dirs.tmp), 'resolv.conf');
  const fresh = `${file}.${process.pid}.${++resolvSeq}`;
  writeFileSync(fresh, '# leapfrog: a network namespace of its own, with no resolver\nnameserver 127.0.0.1\n', { mode: 0o644, flag: 'wx' });
  try {
    renameSync(fresh, file);
  } catch {
    // A directory at the name: nothing a rename can replace.
    rmSync(file, { force: true, recursive: true });
    renameSync(fresh, file);
  }
  return { path: '/etc/resolv.conf', from: file, writable: false };
}

/**
 * The databases this sync moves that the chain says leapfrog creates
 * (`create:`) and that do not exist yet: created with their declared
 * character set and collation, said on screen and in the run's notes.
 */
async function createDeclared(ctx: RunContext, step: StepDef, runId: number): Promise<void> {
  const project = ctx.chain.projects[step.project]!;
  for (const db of Object.keys(step.expect)) {
    const spec = project.create?.[db];
    const name = project.databases[db]!;
    if (!spec || (await ctx.session.exists(name))) continue;
    // On SQLite there is nothing to create (the tool makes the file): nothing to say either.
    if (!(await ctx.session.create(name, spec))) continue;
    const text = `created database ${name} (${[spec.charset && `character set ${spec.charset}`, spec.collation && `collation ${spec.collation}`].filter(Boolean).join(', ') || 'the server\'s defaults'}) before ${step.id}: the chain declares it (create:), its tools do not create it`;
    ctx.ledger.note(runId, text);
    ctx.emit({ type: 'note', text });
  }
}

/** Runs a data step makes before its measured rate is trusted to judge whether max-runs can be enough. */
const RUNS_BEFORE_JUDGING = 3;

/**
 * Why a data step stops before max-runs: at the rate its needed-when count
 * fell over its runs so far, the rows left need more runs than max-runs
 * leaves. Failing after max-runs would cost the window the same runs again,
 * for the same answer (check-migrations projects it before the window from
 * batch:, this from what the runs did).
 */
export function shortOfRuns(first: number | undefined, now: number, runs: number, maxRuns: number): string | undefined {
  if (first === undefined || runs < RUNS_BEFORE_JUDGING || now >= first) return undefined;
  const rate = (first - now) / runs;
  const more = Math.ceil(now / rate);
  if (runs + more <= maxRuns) return undefined;
  return `stopped early: ${runs} runs moved ${first - now} of ${first} rows (${Math.round(rate)} a run); the ${now} left need about ${more} more runs, ${runs + more} in all, more than max-runs ${maxRuns}. Raise max-runs to at least ${more} (the runs the rows left need; or the batch size) in the chain and run again: the rows already moved stay moved`;
}

export async function runOne(ctx: RunContext, runId: number, p: PreparedStep, seq: number, env: ProvisionedEnv, dirs: Dirs): Promise<void> {
  const { step } = p;
  const secrets = [...new Set(servers(ctx.target).flatMap((t) => (t.kind === 'mysql' && t.password ? [t.password] : [])))];
  const logFile = path.join(dirs.logs, `${String(seq).padStart(3, '0')}-${step.id.replace(/\//g, '-')}.log`);
  // Built (and checked) before the step is recorded: a sandbox that cannot be made is not a step that ran.
  const rootfs = env.def.kind === 'rootfs' ? rootfsSandbox(ctx, env, dirs) : undefined;
  if (rootfs) bwrapOptions(rootfs, dirs.work);
  pauseAt('step-start', step.id);
  // A ledger deleted (or moved away) under the run would take the record of everything from here on with it.
  if (!ctx.ledger.inPlace()) {
    throw new LeapfrogError('refused', `the ledger ${ctx.ledger.file} was deleted or replaced while this run was running: stopped before ${step.id}, as nothing from here on could be recorded. The databases stand where the steps before left them; run again (a new ledger derives the plan from their versions)`);
  }
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
  const evidence = evidenceWriter(ctx, p, rowId, env.sha256);
  // What the step's time grows with (check/predict.ts): its declared tables or its needed-when count, as the
  // pre-flight counted them before the run, which is when check-migrations counts them on another target: the
  // same moment on both sides, so the rows of one scale the time of the other (a step's own start would see
  // what earlier steps added).
  const rows = ctx.stepRows?.[step.id];
  ctx.emit({ type: 'step-start', step: p, argv: p.argv, logFile });
  const started = performance.now();
  let attempts = 0;
  let last: StepOutcome | undefined;
  const tail = () => (last?.tail ?? []).join('\n');
  const finish = (status: 'succeeded' | 'failed' | 'interrupted' | 'skipped', message?: string) => {
    const durationMs = performance.now() - started;
    ctx.ledger.stepFinished(rowId, { status, exitCode: last?.exitCode ?? null, durationMs, attempts, logTail: tail(), error: message, rows });
    ctx.emit({ type: 'step-end', step: p, status, durationMs, attempts, message });
  };
  const fail = (message: string): never => {
    finish('failed', message);
    throw new LeapfrogError('step-failed', `step ${step.id} (${step.kind} in env ${step.env}) ${message}`, {
      details: [`log: ${logFile}`, ...(last?.tail.length ? ['last lines:', ...last.tail.map((l) => '  ' + l)] : [])],
    });
  };
  // Inside a rootfs sandbox the env's tree is `/`: `{{ root }}/lib` is /lib. Bytecode is not written
  // into any env: a rootfs tree is read-only, and a plain one is checked against its manifest before
  // every run (envs/cache.ts), where a new __pycache__ file would read as a change. The shipped .pyc
  // files are still read. PYTHONPYCACHEPREFIX is not used: with it set, Python ignores the
  // __pycache__ beside the sources and compiles everything again.
  const root = rootfs ? '' : env.root;
  const exec = async (): Promise<StepOutcome> => {
    last = await runStepProcess({
      argv: p.argv,
      shownArgv: p.argv,
      envRoot: rootfs ? '/' : env.root,
      envPath: env.def.path,
      envVars: {
        PYTHONDONTWRITEBYTECODE: '1',
        ...Object.fromEntries(Object.entries(env.def.vars).map(([k, v]) => [k, v.replace(/\{\{\s*root\s*\}\}/g, root)])),
      },
      rootfs,
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
      wrapper: rootfs ? undefined : ctx.stepWrapper,
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
    if (step.kind === 'sync') {
      await createDeclared(ctx, step, runId);
      // What the step's databases look like before its child touches them (a sync's evidence).
      await evidence.record('before');
    }
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
      const first = count;
      if (count === 0) {
        finish('skipped', 'not needed: its needed-when query returns 0');
        return;
      }
      if (count !== undefined) ctx.emit({ type: 'step-needed', step: p, count });
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
          const short = shortOfRuns(first, count, attempts, step.maxRuns);
          if (short) fail(short);
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
      await evidence.record('after');
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

