import type { CommandModule } from 'yargs';
import { plan } from '../chain/plan.js';
import { LeapfrogError } from '../errors.js';
import { withLedger } from '../ledger/ledger.js';
import { barRenderer, lineRenderer, type Renderer } from '../report/progress.js';
import { finalVersionsText, planJson, planSummary, planText, RUN_FORMAT, versionsJson } from '../report/render.js';
import { executePlan, prepare } from '../runner/runner.js';
import { readState } from '../runner/state.js';
import { withTarget } from '../target/session.js';
import { describeTarget, type Target } from '../target/url.js';
import { probeNetworkIsolation } from '../sandbox/run-step.js';
import { commonOptions, load, provisionOptions, type CommonArgs } from './context.js';
import { processIo, type Io } from './io.js';

interface RunArgs extends CommonArgs {
  until: string | undefined;
  parallel: number;
  'dry-run': boolean;
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
  const ctx = load(args);
  const provision = provisionOptions(args, [args.chain]);
  const stepWrapper = await isolation(args, ctx.target);
  const target = describeTarget(ctx.target);
  await withLedger(ctx.layout.stateDir, (ledger) =>
    withTarget(ctx.target, async (session) => {
      const p = plan({ ...(await readState(ctx.chain, session, ledger)), until: args.until });
      const steps = prepare(ctx.chain, p, ctx.target, ctx.layout);
      if (args['dry-run'] || steps.length === 0) {
        io.out(args.format === 'json' ? JSON.stringify({ ...planJson(p, target, steps), dryRun: args['dry-run'] }, null, 2) : planText(p, target, steps, ctx.layout.configDir));
        return;
      }
      if (args.format === 'text') io.err(planSummary(p, target));

      const renderer: Renderer = io.tty ? barRenderer(process.stderr) : lineRenderer(io.err);
      const abort = new AbortController();
      const onSignal = (sig: NodeJS.Signals) => {
        io.err(`\n${sig}: stopping at a safe point (the running step gets SIGTERM)…`);
        abort.abort();
      };
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
      let result;
      try {
        result = await executePlan(
          { chain: ctx.chain, envs: ctx.envs, target: ctx.target, layout: ctx.layout, ledger, session, parallel: args.parallel, emit: (e) => renderer.on(e), signal: abort.signal, provision, stepWrapper },
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
              error: result.error ? { message: result.error.message, details: result.error.details } : null,
              versions: versionsJson(result.versions),
            },
            null,
            2,
          ),
        );
      } else {
        io.out(`Run ${result.runId} ${result.status}. Versions now:\n${finalVersionsText(result.versions)}\nLedger: ${ledger.file} (leapfrog ledger show ${result.runId} --state-dir ${ctx.layout.stateDir})`);
      }
      if (result.error) throw result.error;
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
      .option('isolate-network', { type: 'boolean', default: false, describe: 'run steps in a new network namespace (unshare); the target must be SQLite or a MySQL unix socket' }) as never,
  handler: (args) => runCommand(args),
};
