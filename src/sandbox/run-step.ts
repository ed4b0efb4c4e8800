import { createWriteStream } from 'node:fs';
import { once } from 'node:events';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { execa } from 'execa';

/**
 * Run one step's command in a sandbox: an environment built from nothing
 * (STYLE.md, "child-process hygiene"), the env's bin directories first on
 * PATH, HOME and TMPDIR inside the run directory, a timeout, and all output
 * streamed to one log file per step. The only module that imports execa.
 */

/** Variables a step may inherit from leapfrog's own environment: locale and time zone only. */
export const INHERITED_VARS = ['LANG', 'LC_ALL', 'LC_CTYPE', 'TZ'] as const;
const SYSTEM_PATH = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];
const TAIL_LINES = 20;
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
  const env: Record<string, string> = {};
  for (const k of INHERITED_VARS) {
    const v = parent[k];
    if (v !== undefined) env[k] = v;
  }
  env.PATH = [...p.envPath.map((d) => path.join(p.envRoot, d)), ...SYSTEM_PATH].join(':');
  env.HOME = p.home;
  env.TMPDIR = p.tmp;
  for (const [k, v] of Object.entries(p.envVars)) env[k] = v;
  return env;
}

function mask(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const s of secrets) if (s !== '') out = out.split(s).join('****');
  return out;
}

export async function runStepProcess(p: StepProcess): Promise<StepOutcome> {
  const log = createWriteStream(p.logFile, { flags: 'a', mode: 0o600 });
  log.write(`# ${new Date().toISOString()} $ ${p.shownArgv.join(' ')}\n`);
  const tail: string[] = [];
  let partial = '';
  const keep = (text: string) => {
    const lines = (partial + text).split('\n');
    partial = lines.pop() ?? '';
    for (const l of lines) {
      tail.push(l);
      if (tail.length > TAIL_LINES) tail.shift();
    }
  };

  const started = performance.now();
  // The child leads its own process group, so a timeout or a signal stops
  // everything it started (a shell's `sleep`, a tool's workers), not just the
  // shell, and nothing of a finished step lives on holding its log open.
  const child = execa(p.argv[0]!, p.argv.slice(1), {
    cwd: p.cwd,
    env: childEnvironment(p),
    extendEnv: false,
    stdin: 'ignore',
    all: true,
    buffer: false,
    reject: false,
    detached: true,
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
  let grace: NodeJS.Timeout | undefined;
  const stop = () => {
    killGroup('SIGTERM');
    grace ??= setTimeout(() => killGroup('SIGKILL'), GRACE_MS);
  };
  const timer = setTimeout(() => {
    timedOut = true;
    stop();
  }, p.timeoutMs);
  if (p.signal?.aborted) stop();
  p.signal?.addEventListener('abort', stop, { once: true });
  child.on('exit', () => killGroup('SIGKILL'));
  child.all?.on('data', (chunk: Buffer) => {
    const text = mask(chunk.toString('utf8'), p.secrets);
    log.write(text);
    keep(text);
  });
  const result = await child;
  clearTimeout(timer);
  clearTimeout(grace);
  p.signal?.removeEventListener('abort', stop);
  const durationMs = performance.now() - started;
  if (partial !== '') keep('\n');

  const spawnError = result.failed && result.exitCode === undefined && result.signal === undefined
    ? mask(String(result.shortMessage ?? result.message), p.secrets)
    : undefined;
  const outcome: StepOutcome = {
    exitCode: result.exitCode ?? null,
    signal: result.signal ?? null,
    timedOut,
    spawnError,
    durationMs,
    tail,
  };
  log.write(
    `# ${new Date().toISOString()} ${spawnError ? `could not start: ${spawnError}` : outcome.timedOut ? `timed out after ${p.timeoutMs} ms` : outcome.signal ? `killed by ${outcome.signal}` : `exit ${outcome.exitCode}`} (${durationMs.toFixed(1)} ms)\n`,
  );
  log.end();
  await once(log, 'close');
  return outcome;
}
