import type { CommandModule } from 'yargs';
import { plan } from '../chain/plan.js';
import { LeapfrogError } from '../errors.js';
import { withLedger } from '../ledger/ledger.js';
import { barRenderer, lineRenderer, type Renderer } from '../report/progress.js';
import { finalVersionsText, planJson, planSummary, planText, RUN_FORMAT, versionsJson } from '../report/render.js';
import { executePlan, prepare, SNAPSHOT_MODES, type SnapshotMode } from '../runner/runner.js';
import { offlineGuard } from '../runner/guard.js';
import { describeDrift, findDrift, findUnfinished, historyLost, markCrashed } from '../runner/recover.js';
import { readState } from '../runner/state.js';
import { withTargetLock } from '../database/lock.js';
import { withTarget } from '../database/session.js';
import { describeTarget, type Target } from '../database/url.js';
import { probeNetworkIsolation } from '../sandbox/run-step.js';
import { commonOptions, load, provisionOptions, type CommonArgs } from './context.js';
import { processIo, type Io } from './io.js';

interface RunArgs extends CommonArgs {
  until: string | undefined;
  parallel: number;
  'dry-run': boolean;
  'wait-lock': number;
  snapshot: SnapshotMode;
  force: boolean;
  resume: boolean;
  'accept-drift': boolean;
  'isolate-network': boolean;
}

/**
 * --isolate-network: steps run in a network namespace of their own, with
 * only a loopback that is down. The target must then be reachable without
 * the network: SQLite files, or a MySQL unix socket (a socket file is a
 * file, seen from any network namespace). A TCP target would be cut off.
 */
async function isolation(args: RunArgs, target: Target): Promise<readonly string[] | undefined> {
  if (!args['isolate-network']) return undefined;
  if (target.kind === 'mysql' && !target.socket) {
    throw new LeapfrogError('input', `--isolate-network: the target ${describeTarget(target)} is reached over TCP, which a step in its own network namespace cannot do; connect through the server's unix socket (mysql://user@localhost?socket=/path/mysqld.sock) or run without --isolate-network`);
  }
  const probe = await probeNetworkIsolation();
  if ('why' in probe) {
    throw new LeapfrogError('input', `--isolate-network: this machine cannot run a step in a new network namespace (${probe.why}). Run as root, enable unprivileged user namespaces (e.g. sysctl user.max_user_namespaces), or run without --isolate-network`);
  }
  return probe.wrapper;
}

export async function runCommand(args: RunArgs, io: Io = processIo): Promise<void> {
  if (!Number.isInteger(args.parallel) || args.parallel < 1) throw new LeapfrogError('input', `--parallel ${args.parallel}: must be a whole number of projects, 1 or more`);
  if (!(args['wait-lock'] >= 0)) throw new LeapfrogError('input', `--wait-lock ${args['wait-lock']}: must be a number of seconds, 0 or more`);
  const ctx = load(args);
  const provision = provisionOptions(args, [args.chain]);
  const stepWrapper = await isolation(args, ctx.target);
  const target = describeTarget(ctx.target);
  await withLedger(ctx.layout.stateDir, (ledger) =>
    withTarget(ctx.target, async (session) => {
      const planNow = async () => {
        const state = await readState(ctx.chain, session, ledger);
        const p = plan({ ...state, until: args.until });
        return { p, steps: prepare(ctx.chain, p, ctx.target, ctx.layout), state };
      };
      const show = ({ p, steps }: Awaited<ReturnType<typeof planNow>>) =>
        io.out(args.format === 'json' ? JSON.stringify({ ...planJson(p, target, steps), dryRun: args['dry-run'] }, null, 2) : planText(p, target, steps, ctx.layout.configDir));
      // A dry run changes nothing, so it takes no lock (like `plan`).
      if (args['dry-run']) return show(await planNow());
      // Lock first, then read state (STYLE.md): nothing below races another run.
      await withTargetLock(ctx.target, ctx.chain, ctx.layout.stateDir, { waitSeconds: args['wait-lock'], command: 'run' }, async () => {
        await offlineGuard(session, ctx.chain, args.force, io.err);
        // Earlier runs that died: refuse while any part of one may still be alive.
        const crashed = await findUnfinished(ledger, ctx.chain, session, args.resume, args['wait-lock'] * 1000);
        const last = ledger.lastRun(ctx.chain.name, target);
        if (args.resume && crashed.length === 0 && last?.status !== 'interrupted' && last?.status !== 'failed') {
          throw new LeapfrogError('input', `--resume: nothing to resume; ${last ? `the last run of chain ${ctx.chain.name} on this target (${last.id}) ${last.status}` : `no run of chain ${ctx.chain.name} on this target is recorded`}. Run without --resume.`);
        }
        const planned = await planNow();
        const { p, steps, state } = planned;

        const notes: string[] = [];
        if (historyLost(ledger, ctx.chain, session, state.versions)) {
          notes.push(`no history of chain ${ctx.chain.name} on this target in ${ledger.file}, but its databases are past the chain's start: the plan is derived from their versions alone; data steps without a needed-when query will run again`);
        }
        const drift = await findDrift(ledger, ctx.chain, session, state.versions);
        if (drift.length > 0 && !args['accept-drift']) {
          throw new LeapfrogError('refused', `the schema of ${drift.length === 1 ? 'a database' : `${drift.length} databases`} changed since the last checkpoint although the version did not (changed by hand?); nothing was run. Look at the changes; run with --accept-drift to go on anyway (recorded in the ledger):`, {
            details: drift.map(describeDrift),
          });
        }
        for (const d of drift) notes.push(`drift accepted (--accept-drift): ${describeDrift(d)}`);
        if (crashed.length > 0) notes.push(...markCrashed(ledger, crashed, state.versions));
        for (const n of notes) io.err(`leapfrog: ${n}`);

        if (steps.length === 0) return show(planned);
        if (args.format === 'text') io.err(planSummary(p, target));
        if (args.snapshot === 'none') io.err('Snapshots: none (--snapshot none). leapfrog cannot roll this run back; only your own backup can.');

        const renderer: Renderer = io.tty ? barRenderer(process.stderr) : lineRenderer(io.err);
        const abort = new AbortController();
        // Every signal is caught for the life of the run: a second Ctrl-C must not
        // kill leapfrog while its step is still rolling back.
        const onSignal = (sig: NodeJS.Signals) => {
          io.err(abort.signal.aborted ? `${sig}: already stopping; the step gets SIGKILL if it has not ended 10 s after SIGTERM` : `\n${sig}: stopping at a safe point (the running step gets SIGTERM)…`);
          abort.abort();
        };
        process.on('SIGINT', onSignal);
        process.on('SIGTERM', onSignal);
        let result;
        try {
          result = await executePlan(
            { chain: ctx.chain, envs: ctx.envs, target: ctx.target, layout: ctx.layout, ledger, session, parallel: args.parallel, emit: (e) => renderer.on(e), signal: abort.signal, snapshot: args.snapshot, notes, provision, stepWrapper },
            p,
            steps,
            args.until,
          );
        } finally {
          renderer.stop();
          process.off('SIGINT', onSignal);
          process.off('SIGTERM', onSignal);
        }
        if (args.format === 'json') {
          io.out(
            JSON.stringify(
              {
                format: RUN_FORMAT,
                chain: ctx.chain.name,
                target,
                run: result.runId,
                status: result.status,
                ledger: ledger.file,
                runDir: result.runDir,
                steps: ledger.steps(result.runId).map((s) => ({ id: s.step_id, status: s.status, attempts: s.attempts, exitCode: s.exit_code, durationMs: s.duration_ms, log: s.log_path })),
                snapshot: args.snapshot,
                snapshots: ledger.snapshots(result.runId).map((x) => ({ id: x.id, database: x.database, before: x.before_step, file: x.file, sha256: x.sha256, bytes: x.bytes })),
                error: result.error ? { message: result.error.message, details: result.error.details } : null,
                versions: versionsJson(result.versions),
              },
              null,
              2,
            ),
          );
        } else {
          io.out(`Run ${result.runId} ${result.status}${args.snapshot === 'none' ? ' (no snapshot taken: --snapshot none)' : ''}. Versions now:\n${finalVersionsText(result.versions)}\nLedger: ${ledger.file} (leapfrog ledger show ${result.runId} --state-dir ${ctx.layout.stateDir})`);
        }
        if (result.error) throw result.error;
      });
    }),
  );
}

export const runModule: CommandModule<object, RunArgs> = {
  command: 'run',
  describe: 'execute the plan, checkpointing after every hop',
  builder: (y) =>
    commonOptions(y)
      .option('until', { type: 'string', describe: 'stop after this release' })
      .option('parallel', { type: 'number', default: 1, describe: 'run up to N projects at once' })
      .option('dry-run', { type: 'boolean', default: false, describe: 'print the plan and run nothing' })
      .option('snapshot', { choices: SNAPSHOT_MODES, default: 'first-hop' as SnapshotMode, describe: 'snapshot the databases before the first hop, before every hop, or not at all (for `rollback`)' })
      .option('force', { type: 'boolean', default: false, describe: 'run even while other client sessions are connected to the chain\'s databases' })
      .option('wait-lock', { type: 'number', default: 0, describe: 'wait up to SECONDS for another run on this target to finish (default: fail at once, naming it)' })
      .option('resume', { type: 'boolean', default: false, describe: 'continue after a crashed or interrupted run (also the default behaviour); required when the dead run was on another host' })
      .option('accept-drift', { type: 'boolean', default: false, describe: 'go on although a schema changed since its last checkpoint (recorded)' })
      .option('isolate-network', { type: 'boolean', default: false, describe: 'run steps in a new network namespace (unshare); the target must be SQLite or a MySQL unix socket' }) as never,
  handler: (args) => runCommand(args),
};
