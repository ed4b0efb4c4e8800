import type { EnvDef } from '../chain/types.js';
import { estimate, batchesOf, rowsNowOf, type Estimate } from '../check/estimate.js';
import { chainHistory, chainHistoryAt } from '../check/history.js';
import { withTargetLock } from '../database/lock.js';
import { withTarget, type TargetSession } from '../database/session.js';
import { describePlacement } from '../database/placement.js';
import { LeapfrogError } from '../errors.js';
import { withLedger, type Ledger } from '../ledger/ledger.js';
import type { RunEvent } from '../runner/events.js';
import { executePlan } from '../runner/execute.js';
import type { RunResult } from '../runner/context.js';
import { resolveSnapshotMode, type SnapshotChoice } from '../runner/snapshot-plan.js';
import { probeNetworkIsolation } from '../sandbox/run-step.js';
import { probeBubblewrap } from '../sandbox/bwrap.js';
import type { CoreContext } from './context.js';
import { offlineGuard } from './guard.js';
import { recoverOrphanOutput } from '../sandbox/step-output.js';
import { awaitSurvivors, describeDrift, probedNow, survivorProblem, type DeadRun } from './history.js';
import { preflight, refusalError, type Preflight } from './preflight.js';
import { recordable, recordApplied } from './recovery.js';
import { withStopSignals } from './signals.js';

/**
 * `run`: the one path that moves a target's databases, in the order that
 * keeps it honest (STYLE.md 4, kysely's Migrator: lock first, then read
 * state): the run lock; runs that died before, and whatever of them may
 * still be alive (a dead run's orphaned step is its own work, not a
 * client the offline guard should blame); the offline guard; the
 * pre-flight, whose refusals stop here; what the ledger must learn (a crash
 * found, drift accepted, lost history); snapshots and execution.
 * Rehearsals take the same path on their scratch target.
 */

export interface RunOptions {
  until: string | undefined;
  parallel: number;
  /** `auto` is resolved here, by the target's DDL (snapshot-plan.ts). */
  snapshot: SnapshotChoice;
  waitLockSeconds: number;
  force: boolean;
  resume: boolean;
  acceptDrift: boolean;
  isolateNetwork: boolean;
  kind?: 'run' | 'rehearsal';
  /** Where the ETA's history is, when not in the run's own state directory: a rehearsal's is the one it was started from. */
  historyDir?: string | undefined;
}

export type CoreEvent =
  | RunEvent
  | { type: 'warning'; text: string }
  /** The pre-flight passed: this is what will run, and how long earlier runs and rehearsals of the chain took over it. */
  | { type: 'planned'; preflight: Preflight; estimate: Estimate }
  | { type: 'signal'; text: string };

export interface RunOutcome {
  preflight: Preflight;
  /** Undefined when there was nothing to run. */
  result: RunResult | undefined;
}

/**
 * --isolate-network: steps run in a network namespace of their own, with
 * only a loopback that is down. The target must then be reachable without
 * the network: SQLite files, or a MySQL unix socket (a socket file is a
 * file, seen from any network namespace). A TCP target would be cut off.
 */
async function isolation(session: TargetSession, kind: RunOptions['kind']): Promise<readonly string[]> {
  if (kind === 'rehearsal') {
    const probe = await probeNetworkIsolation();
    if ('why' in probe) {
      throw new LeapfrogError('input', `a rehearsal runs its steps in a network namespace of their own, so that nothing in the restored databases (nova's cell_mappings URLs) can lead a step to the server they were copied from, and this machine cannot (${probe.why}). Run as root or enable unprivileged user namespaces (sysctl user.max_user_namespaces), or pass --allow-network knowing that steps may then reach any server the restored data names`);
    }
    return probe.wrapper;
  }
  if (!session.reachableWithoutNetwork()) {
    throw new LeapfrogError('input', `--isolate-network: the target ${describePlacement(session.placement)} is reached over TCP, which a step in its own network namespace cannot do; connect through the server's unix socket (mysql://user@localhost?socket=/path/mysqld.sock) or run without --isolate-network`);
  }
  const probe = await probeNetworkIsolation();
  if ('why' in probe) {
    throw new LeapfrogError('input', `--isolate-network: this machine cannot run a step in a new network namespace (${probe.why}). Run as root, enable unprivileged user namespaces (e.g. sysctl user.max_user_namespaces), or run without --isolate-network`);
  }
  return probe.wrapper;
}

/** When a step to run is in a rootfs env: the bwrap that will run it, probed now, before anything runs. */
async function sandboxFor(envs: readonly (EnvDef | undefined)[]): Promise<string | undefined> {
  const rootfs = [...new Set(envs.filter((e) => e?.kind === 'rootfs').map((e) => e!.name))];
  if (rootfs.length === 0) return undefined;
  const probe = await probeBubblewrap();
  if ('why' in probe) throw new LeapfrogError('input', `env${rootfs.length === 1 ? '' : 's'} ${rootfs.join(', ')} ${rootfs.length === 1 ? 'is a rootfs env' : 'are rootfs envs'}, but ${probe.why}. Nothing was run.`);
  return probe.bwrap;
}

/**
 * Record the crash in the ledger: dangling steps become `interrupted`, with
 * what the databases say now; the output an orphaned step went on writing
 * after its leapfrog died goes into its log (sandbox/step-output.ts).
 */
function markCrashed(ledger: Ledger, found: readonly DeadRun[], pre: Preflight): string[] {
  return found.map(({ run, steps, survivor }) => {
    if (survivor.kind === 'dead') {
      for (const s of steps) {
        if (!s.log_path) continue;
        try {
          recoverOrphanOutput(s.log_path, `leapfrog (run ${run.id}) died while this step ran; the step's own output went on to the line above; its exit status was not seen. Found by the next run (pid ${process.pid}).`);
        } catch {
          // A log that cannot be completed must not keep the crash from being recorded; its raw output stays beside it.
        }
      }
    }
    const now = probedNow(steps, pre.versions ?? {});
    ledger.markInterrupted(run.id, steps.map((s) => s.id), `the run died while this step was running; found by the next run (pid ${process.pid})${now ? `, which re-probed: ${now}` : ''}`);
    return steps.length > 0
      ? `run ${run.id} died during ${steps.map((s) => `${s.step_id} (${s.kind})`).join(', ')}; marked interrupted; the databases say: ${now}. Resuming from there.`
      : `run ${run.id} died between steps; marked interrupted. Resuming.`;
  });
}

export async function run(ctx: CoreContext, o: RunOptions, emit: (e: CoreEvent) => void): Promise<RunOutcome> {
  const { chain, target, layout } = ctx;
  const shown = describePlacement(target);
  return withStopSignals(
    (text) => emit({ type: 'signal', text }),
    (signal) =>
      withLedger(layout.stateDir, (ledger) =>
        withTarget(target, async (session) => {
          const stepWrapper = o.isolateNetwork ? await isolation(session, o.kind) : undefined;
          return withTargetLock(session, chain, layout.stateDir, { waitSeconds: o.waitLockSeconds, command: o.kind ?? 'run' }, async () => {
            // A dead run's orphaned step may be finishing: --wait-lock waits for it too, before anyone counts clients.
            const dead = await awaitSurvivors(ledger, chain, shown, o.waitLockSeconds * 1000, signal);
            const alive = dead.flatMap((d) => survivorProblem(d, chain, o.resume) ?? []);
            if (alive.length > 0) throw new LeapfrogError('refused', alive[0]!, { details: alive.slice(1) });
            // A rehearsal's databases are its own copies: no service can be connected to them.
            if (o.kind !== 'rehearsal') await offlineGuard(session, chain, o.force, (text) => emit({ type: 'warning', text }));
            // What a writer killed mid-transaction left (SQLite's hot journal) is rolled back first, as its next
            // connection would: nobody else holds the files now, and probes read read-only.
            const databases = Object.values(chain.projects).flatMap((p) => Object.values(p.databases));
            for (const name of await session.rollBackInterrupted(databases)) {
              emit({ type: 'warning', text: `database ${name}: rolled back the unfinished transaction a writer that died left in its rollback journal` });
            }
            let pre = await preflight({ chain, layout, session, ledger }, o);
            // A dead run is marked whatever comes next: a refusal below must not leave it `running`.
            const crashed = markCrashed(ledger, pre.unfinished, pre);
            // Steps the evidence proves fully applied are recorded, not run again; the plan is then made anew.
            const applied = pre.refusals.length === 0 ? recordable(pre.recovery) : new Map();
            const recorded = applied.size > 0 ? await recordApplied(ledger, session, applied) : [];
            if (recorded.length > 0) pre = await preflight({ chain, layout, session, ledger }, o);
            if (pre.refusals.length > 0) {
              for (const text of crashed) emit({ type: 'note', text: text.replace(/ Resuming( from there)?\.$/, '') });
              throw refusalError(pre.refusals);
            }
            const last = pre.lastRun;
            if (o.resume && pre.unfinished.length === 0 && last?.status !== 'interrupted' && last?.status !== 'failed') {
              throw new LeapfrogError('input', `--resume: nothing to resume; ${last ? `the last run of chain ${chain.name} on this target (${last.id}) ${last.status}` : `no run of chain ${chain.name} on this target is recorded`}. Run without --resume.`);
            }

            const notes: string[] = [];
            if (pre.historyLost) {
              notes.push(`no history of chain ${chain.name} on this target in ${ledger.file}, but its databases are past the chain's start: the plan is derived from their versions alone; data steps without a needed-when query will run again`);
            }
            for (const d of pre.drift) notes.push(`drift accepted (--accept-drift): ${describeDrift(d)}`);
            notes.push(...crashed, ...recorded);
            for (const text of notes) emit({ type: 'note', text });

            if (!pre.plan || !pre.steps || pre.steps.length === 0) return { preflight: pre, result: undefined };
            if (signal.aborted) throw new LeapfrogError('interrupted', 'interrupted before the first step; nothing was run');
            const bwrap = await sandboxFor(pre.steps.map((p) => ctx.envs.get(p.step.env)));
            // The same estimate check-migrations prints, from the same history: progress counts it down.
            const predicted = estimate(pre.plan, o.historyDir ? chainHistoryAt(o.historyDir, chain.name) : chainHistory(ledger, layout.stateDir, chain.name), rowsNowOf(pre.stepRows), batchesOf(chain));
            emit({ type: 'planned', preflight: pre, estimate: predicted });
            const result = await executePlan(
              { prediction: predicted, stepRows: pre.stepRows, chain, envs: ctx.envs, target, layout, ledger, session, parallel: o.parallel, emit, signal, kind: o.kind ?? 'run', snapshot: resolveSnapshotMode(o.snapshot, session.placement.default.kind === 'sqlite'), notes, provision: ctx.provision, stepWrapper, bwrap },
              pre.plan,
              pre.steps,
              o.until,
            );
            return { preflight: pre, result };
          });
        }),
      ),
  );
}
