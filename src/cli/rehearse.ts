import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import cliProgress from 'cli-progress';
import type { CommandModule } from 'yargs';
import { loadChain, loadChainEnvs } from '../chain/load.js';
import { LeapfrogError } from '../errors.js';
import { rehearse, type RehearsalEvent, type RehearsalPlace } from '../rehearse/rehearse.js';
import { barRenderer, lineRenderer, type Renderer } from '../report/progress.js';
import { formatMs } from '../report/render.js';
import { rehearsalHtml, rehearsalText } from '../report/rehearsal.js';
import { parseTargetUrl } from '../target/url.js';
import { processIo, type Io } from './io.js';

interface RehearseArgs {
  chain: string;
  dump: string[];
  server: string | undefined;
  prefix: string | undefined;
  mysqld: string | undefined;
  keep: boolean;
  jobs: number;
  parallel: number;
  report: string | undefined;
  'state-dir': string;
  'cache-dir': string | undefined;
  envs: string | undefined;
  format: 'text' | 'json';
}

const whole = (flag: string, n: number, what: string) => {
  if (!Number.isInteger(n) || n < 1) throw new LeapfrogError('input', `--${flag} ${n}: must be a whole number of ${what}, 1 or more`);
};

/** Restore progress: a bar on a terminal, a line every few seconds otherwise. */
function restoreRenderer(io: Io): { on(e: RehearsalEvent): void; stop(): void } {
  let bar: cliProgress.SingleBar | undefined;
  let lastLine = 0;
  const mb = (n: number) => (n / 1024 / 1024).toFixed(0);
  return {
    on(e) {
      if (e.type !== 'restore') return;
      const p = e.progress;
      const eta = p.etaMs === undefined ? '?' : formatMs(p.etaMs);
      if (io.tty) {
        bar ??= new cliProgress.SingleBar({ stream: process.stderr, format: ' restore [{bar}] {percentage}% {mb}/{totalMb} MB, ETA {eta}', hideCursor: true }, cliProgress.Presets.shades_classic);
        if (!bar.isActive) bar.start(p.total, 0, { mb: '0', totalMb: mb(p.total), eta });
        bar.update(p.bytes, { mb: mb(p.bytes), totalMb: mb(p.total), eta });
        if (p.done && p.bytes >= p.total) bar.stop();
      } else if (p.done || p.elapsedMs - lastLine >= 5000) {
        lastLine = p.elapsedMs;
        io.err(`${new Date().toISOString().slice(11, 19)} restore ${mb(p.bytes)}/${mb(p.total)} MB (${((100 * p.bytes) / Math.max(1, p.total)).toFixed(0)}%)${p.done ? ` of ${p.file} done` : `, ETA ${eta}`}`);
      }
    },
    stop() {
      bar?.stop();
    },
  };
}

export async function rehearseCommand(args: RehearseArgs, io: Io = processIo): Promise<void> {
  whole('jobs', args.jobs, 'connections');
  whole('parallel', args.parallel, 'projects');
  const dumps = args.dump ?? [];
  if (dumps.length === 0) throw new LeapfrogError('input', 'rehearse needs --dump FILE (SQL, gzip SQL, or SQLite .sqlite3 files)');
  if (args.prefix !== undefined && !/^[A-Za-z0-9_]+$/.test(args.prefix)) throw new LeapfrogError('input', `--prefix ${args.prefix}: letters, digits and _ only`);
  const sqlite = dumps.filter((d) => d.endsWith('.sqlite3'));
  if (sqlite.length > 0 && sqlite.length < dumps.length) throw new LeapfrogError('input', '--dump: mix of SQLite files and SQL dumps; rehearse one kind at a time');
  let place: RehearsalPlace;
  if (args.server !== undefined) {
    const t = parseTargetUrl(args.server, process.env.LEAPFROG_DB_PASSWORD);
    if (t.kind !== 'mysql') throw new LeapfrogError('input', `--server ${args.server}: must be a MySQL/MariaDB server (mysql://user@host:port); SQLite rehearsals take the .sqlite3 files as --dump`);
    if (sqlite.length > 0) throw new LeapfrogError('input', '--server takes SQL dumps, not SQLite files');
    place = { mode: 'server', target: t, prefix: args.prefix ?? `lfr${randomBytes(3).toString('hex')}_` };
  } else if (sqlite.length > 0) {
    place = { mode: 'sqlite' };
  } else {
    place = { mode: 'scratch', mysqld: args.mysqld };
  }
  const chain = loadChain(args.chain, { envDir: args.envs });
  const envs = loadChainEnvs(chain);

  const runRenderer: Renderer = io.tty ? barRenderer(process.stderr) : lineRenderer(io.err);
  const restoreBar = restoreRenderer(io);
  const abort = new AbortController();
  const onSignal = (sig: NodeJS.Signals) => {
    io.err(`\n${sig}: stopping at a safe point, then removing the scratch databases…`);
    abort.abort();
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  let result;
  try {
    result = await rehearse({
      chain,
      envs,
      stateDir: args['state-dir'],
      cacheDir: args['cache-dir'],
      dumps,
      place,
      keep: args.keep,
      jobs: args.jobs,
      parallel: args.parallel,
      signal: abort.signal,
      emit: (e) => {
        if (e.type === 'phase') io.err(`${new Date().toISOString().slice(11, 19)} ${e.message}`);
        else if (e.type === 'restore') restoreBar.on(e);
        else runRenderer.on(e.event);
      },
    });
  } finally {
    restoreBar.stop();
    runRenderer.stop();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  const { report, error } = result;
  if (args.report) {
    writeFileSync(args.report, rehearsalHtml(report));
    io.err(`report: ${args.report}`);
  }
  io.out(args.format === 'json' ? JSON.stringify(report, null, 2) : rehearsalText(report));
  if (error) throw error;
}

export const rehearseModule: CommandModule<object, RehearseArgs> = {
  command: 'rehearse',
  describe: 'restore a dump into a scratch server, run the chain there, audit row counts and report the timings',
  builder: (y) =>
    y
      .option('chain', { type: 'string', demandOption: true, describe: 'chain file (YAML or JSON)' })
      .option('dump', { type: 'string', array: true, demandOption: true, describe: 'SQL dump (plain or gzip; one per database or one with several), or SQLite .sqlite3 files' })
      .option('server', { type: 'string', describe: 'rehearse on this existing server (mysql://user@host:port), every database renamed with --prefix' })
      .option('prefix', { type: 'string', describe: 'with --server: prefix for the rehearsal\'s databases (default lfrXXXXXX_)' })
      .option('mysqld', { type: 'string', describe: 'the server binary for the scratch server (default mariadbd or mysqld on PATH)' })
      .option('keep', { type: 'boolean', default: false, describe: 'leave the scratch server running (or the prefixed databases) afterwards' })
      .option('jobs', { type: 'number', default: 4, describe: 'restore over N connections' })
      .option('parallel', { type: 'number', default: 1, describe: 'run up to N projects at once (as the real run will)' })
      .option('report', { type: 'string', describe: 'also write a self-contained HTML report here' })
      .option('state-dir', { type: 'string', default: './.leapfrog', describe: 'the rehearsal gets STATE_DIR/rehearsals/<id>/ with its own ledger' })
      .option('cache-dir', { type: 'string', describe: 'env cache (default: STATE_DIR/envs)' })
      .option('envs', { type: 'string', describe: 'directory of env files (default: the chain\'s envs:, else ../envs next to the chain)' })
      .option('format', { choices: ['text', 'json'] as const, default: 'text' as const, describe: 'output format' }) as never,
  handler: (args) => rehearseCommand(args),
};
