import { spawn } from 'node:child_process';
import { closeSync, existsSync, fstatSync, openSync, writeSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { execa } from 'execa';
import { LeapfrogError } from '../errors.js';
import { shellQuote } from '../report/format.js';
import { failureTail } from '../report/tail.js';
import { containsSecret, maskSecrets as mask } from '../report/secrets.js';
import { bwrapOptions, type RootfsSandbox } from './bwrap.js';
import { clientEnvironment, SYSTEM_PATH } from './child-env.js';
import { followOutput, type OutputFollower } from './step-output.js';

/**
 * Run one step's command in a sandbox: an environment built from nothing
 * (STYLE.md, "child-process hygiene"), the env's bin directories first on
 * PATH, HOME and TMPDIR inside the run directory, a timeout, and all output
 * in one log file per step (step-output.ts). The one place steps are spawned.
 */


export { INHERITED_VARS } from './child-env.js';
/**
 * The output kept in memory to choose the failure tail from (report/tail.ts):
 * enough to hold a real tool's error and the SQL and traceback after it,
 * bounded per line so one huge line cannot grow it.
 */
const WINDOW_LINES = 2000;
const WINDOW_LINE_CHARS = 2000;
/** How often the log catches up with the step's output file while it runs. */
const FOLLOW_MS = 250;
/** Between SIGTERM and SIGKILL: time for a tool to roll back its transaction. */
const GRACE_MS = 10_000;

export interface StepProcess {
  argv: readonly string[];
  /** What the log header shows instead of argv (argv with secrets masked). */
  shownArgv: readonly string[];
  envRoot: string;
  /** Directories inside envRoot to put first on PATH. */
  envPath: readonly string[];
  envVars: Readonly<Record<string, string>>;
  cwd: string;
  home: string;
  tmp: string;
  logFile: string;
  timeoutMs: number;
  /** Masked in everything written to the log. */
  secrets: readonly string[];
  signal?: AbortSignal | undefined;
  /** Called once the child exists, with its pid (which leads its process group). */
  onSpawn?: ((pid: number) => void) | undefined;
  /** Put before argv, e.g. `unshare --net` from `probeNetworkIsolation`. Not used with `rootfs`, whose sandbox has its own network switch. */
  wrapper?: readonly string[] | undefined;
  /** A `kind: rootfs` env: run under bubblewrap (bwrap.ts), this binary, with the tree as `/`. */
  rootfs?: (RootfsSandbox & { bwrap: string }) | undefined;
}

export interface StepOutcome {
  exitCode: number | null;
  signal: string | null;
  timedOut: boolean;
  /** The command could not be started at all (not found, not executable). */
  spawnError: string | undefined;
  durationMs: number;
  tail: string[];
}

export function childEnvironment(p: Pick<StepProcess, 'envRoot' | 'envPath' | 'envVars' | 'home' | 'tmp'>, parent: NodeJS.ProcessEnv = process.env): Record<string, string> {
  return clientEnvironment({ path: p.envPath.map((d) => path.join(p.envRoot, d)), vars: { HOME: p.home, TMPDIR: p.tmp, ...p.envVars } }, parent);
}

export async function runStepProcess(p: StepProcess): Promise<StepOutcome> {
  // The argv guard at the last edge: argv is readable by every user through /proc/PID/cmdline and ps,
  // so no form of a password (raw, percent-encoded, quoted) may reach it, whatever rendered it.
  const leaking = [...(p.wrapper ?? []), ...p.argv].findIndex((a) => p.secrets.some((s) => s !== '' && containsSecret(a, s)));
  if (leaking >= 0) {
    throw new LeapfrogError('input', `refusing to start the step: its argument ${leaking + 1} carries the database password (raw or encoded), which any user of the machine could read from the process list; pass it through a config file instead`);
  }
  // Decided before the log is opened: a sandbox that cannot be built is the caller's error, not a step's outcome.
  const wrapper = p.rootfs ? [p.rootfs.bwrap, ...bwrapOptions(p.rootfs, p.cwd), '--'] : p.wrapper;
  // Open the log before anything runs: a step whose output cannot be kept
  // must not start. Written synchronously, so that its size is known where
  // each attempt's output starts (step-output.ts).
  let fd: number;
  let follower: OutputFollower;
  try {
    fd = openSync(p.logFile, 'a', 0o600);
  } catch (err) {
    throw new LeapfrogError('unexpected', `cannot open the step log ${p.logFile} (${(err as Error).message}); check the state directory`, { cause: err });
  }
  let logError: Error | undefined;
  const write = (text: string) => {
    if (logError) return;
    try {
      writeSync(fd, text);
    } catch (err) {
      logError = err as Error;
    }
  };
  // The header shows argv shell-quoted, so it can be pasted (a quoted SQL argument stays one word);
  // masked too, in case the caller's shownArgv still carries a secret.
  const shown = [...(p.rootfs ? [`bwrap (rootfs ${p.rootfs.root})`] : wrapper ? [shellQuote(wrapper)] : []), shellQuote(p.shownArgv)].join(' ');
  write(`# ${new Date().toISOString()} $ ${mask(shown, p.secrets)}\n`);
  const window: string[] = [];
  let partial = '';
  const keep = (text: string) => {
    const lines = (partial + text).split('\n');
    partial = lines.pop() ?? '';
    for (const l of lines) window.push(l.length > WINDOW_LINE_CHARS ? `${l.slice(0, WINDOW_LINE_CHARS)}…` : l);
    // Trimmed in one splice, not a shift() per line: cheap however much a step prints.
    if (window.length > 2 * WINDOW_LINES) window.splice(0, window.length - WINDOW_LINES);
  };
  try {
    follower = followOutput(p.logFile, fstatSync(fd).size, p.secrets, (text) => {
      write(text);
      keep(text);
    });
  } catch (err) {
    closeSync(fd);
    throw new LeapfrogError('unexpected', `cannot create the step's output file beside ${p.logFile} (${(err as Error).message}); check the state directory`, { cause: err });
  }

  const started = performance.now();
  // The child leads its own process group, so a timeout or a signal stops
  // everything it started (a shell's `sleep`, a tool's workers), not just the
  // shell, and nothing of a finished step lives on holding its log open.
  const argv = [...(wrapper ?? []), ...p.argv];
  // Node's own spawn, not execa: with every descriptor given (no pipes, nothing buffered) execa
  // adds nothing a step needs and cost 2-5 ms per step here (BENCHMARKS.md, runner-overhead).
  const child = spawn(argv[0]!, argv.slice(1), {
    cwd: p.cwd,
    env: childEnvironment(p),
    // One file for both, written by the child itself: interleaved as it wrote them, and kept
    // writable when leapfrog dies (step-output.ts).
    stdio: ['ignore', follower.fd, follower.fd],
    detached: true,
  });
  /** How the child ended, or why it never started ('error' before any 'exit': ENOENT, EACCES…). */
  const ended = new Promise<{ exitCode: number | null; signal: NodeJS.Signals | null; spawnError?: Error }>((resolve) => {
    child.on('error', (e) => resolve({ exitCode: null, signal: null, spawnError: e }));
    child.once('exit', (exitCode, signal) => resolve({ exitCode, signal }));
  });
  const killGroup = (signal: NodeJS.Signals) => {
    if (child.pid === undefined) return;
    try {
      process.kill(-child.pid, signal);
    } catch {
      // Already gone.
    }
  };
  let timedOut = false;
  let cancelled = false;
  let grace: NodeJS.Timeout | undefined;
  const stop = () => {
    killGroup('SIGTERM');
    grace ??= setTimeout(() => killGroup('SIGKILL'), GRACE_MS);
  };
  const timer = setTimeout(() => {
    timedOut = true;
    stop();
  }, p.timeoutMs);
  const onAbort = () => {
    cancelled = true;
    stop();
  };
  if (p.signal?.aborted) onAbort();
  else p.signal?.addEventListener('abort', onAbort, { once: true });
  // Being detached, the group is not killed with leapfrog: killed here when leapfrog exits.
  const onParentExit = () => killGroup('SIGKILL');
  process.once('exit', onParentExit);
  child.on('exit', () => killGroup('SIGKILL'));

  // The log follows the output file while the step runs, for whoever tails it.
  const follow = setInterval(() => {
    try {
      follower.pump();
    } catch {
      // Read again at the end, where an error is reported.
    }
  }, FOLLOW_MS);
  let result;
  try {
    if (child.pid !== undefined && p.onSpawn) {
      try {
        p.onSpawn(child.pid);
      } catch (err) {
        // Whoever asked to know about the child could not record it: do not let it run unrecorded.
        stop();
        await ended;
        // Its output file and the log are closed here: the step never counted.
        try {
          follower.close();
        } catch {
          // Reported as the error below.
        }
        closeSync(fd);
        throw err;
      }
    }
    result = await ended;
  } finally {
    clearTimeout(timer);
    clearTimeout(grace);
    clearInterval(follow);
    p.signal?.removeEventListener('abort', onAbort);
    process.off('exit', onParentExit);
  }
  const durationMs = performance.now() - started;
  try {
    follower.close();
  } catch (err) {
    logError ??= err as Error;
  }
  const partialAtEnd = partial !== '';
  if (partialAtEnd) keep('\n');

  const spawnError = result.spawnError ? mask(`${argv[0]}: ${result.spawnError.message}`, p.secrets) : undefined;
  const outcome: StepOutcome = {
    exitCode: result.exitCode,
    signal: result.signal,
    timedOut,
    spawnError,
    durationMs,
    tail: failureTail(window.slice(-WINDOW_LINES)),
  };
  const how = spawnError
    ? `could not start: ${spawnError}`
    : timedOut
      ? `timed out after ${p.timeoutMs} ms`
      : cancelled
        ? `cancelled${outcome.signal ? ` (killed by ${outcome.signal})` : outcome.exitCode !== null ? ` (exit ${outcome.exitCode})` : ''}`
        : outcome.signal
          ? `killed by ${outcome.signal}`
          : `exit ${outcome.exitCode}`;
  // The end line on a line of its own, after output whose last line had no newline.
  write(`${partialAtEnd ? '\n' : ''}# ${new Date().toISOString()} ${how} (${durationMs.toFixed(1)} ms)\n`);
  closeSync(fd);
  if (logError !== undefined) {
    throw new LeapfrogError('unexpected', `could not write the step log ${p.logFile} (${logError.message}); the step itself ${how}`, { cause: logError });
  }
  return outcome;
}

/**
 * How to run a step in a new network namespace on this machine, probed once
 * by running `true` that way: `unshare --net` (root, or CAP_SYS_ADMIN), else
 * `unshare --user --map-root-user --net` (unprivileged user namespaces).
 * unshare execs the command in place, so the step keeps its pid, its
 * process group and its signals. Resolves to the argv prefix, or to why the
 * machine cannot do it.
 */
export async function probeNetworkIsolation(): Promise<{ wrapper: readonly string[] } | { why: string }> {
  const unshare = SYSTEM_PATH.map((d) => path.join(d, 'unshare')).find((f) => existsSync(f));
  if (!unshare) return { why: 'no unshare(1) on this machine (util-linux)' };
  const tries = [[unshare, '--net'], [unshare, '--user', '--map-root-user', '--net']];
  const errors: string[] = [];
  for (const wrapper of tries) {
    const r = await execa(wrapper[0]!, [...wrapper.slice(1), 'true'], { reject: false, stdin: 'ignore', env: { PATH: SYSTEM_PATH.join(':') }, extendEnv: false });
    if (r.exitCode === 0) return { wrapper };
    errors.push(`\`${[...wrapper, 'true'].join(' ')}\`: ${String(r.stderr).trim() || `exit ${r.exitCode}`}`);
  }
  return { why: errors.join('; ') };
}
