import { randomBytes } from 'node:crypto';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import cliProgress from 'cli-progress';
import type { CommandModule } from 'yargs';
import { loadChain, loadChainEnvs } from '../chain/load.js';
import { LeapfrogError } from '../errors.js';
import { rehearse, type RehearsalEvent, type RehearsalPlace } from '../rehearse/rehearse.js';
import { barRenderer, lineRenderer, type Renderer } from '../report/progress.js';
import { formatMs } from '../report/render.js';
import { rehearsalHtml, rehearsalText } from '../report/rehearsal.js';
import { withTarget } from '../database/session.js';
import { snapshotDatabase } from '../database/snapshot.js';
import { describeTarget, parseTargetUrl, sqliteFile } from '../database/url.js';
import { processIo, type Io } from './io.js';

interface RehearseArgs {
  chain: string;
  dump: string[] | undefined;
  from: string | undefined;
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

/**
 * --from URL: the chain's databases copied from a live target. SQLite: its
 * files (copied again by the rehearsal). MySQL: one consistent
 * `mariadb-dump --single-transaction` per database, the same dumper `run`
 * snapshots with, written gzipped under the rehearsal's state and restored
 * from there like any dump.
 */
async function dumpsFrom(url: string, chainFile: string, envDir: string | undefined, stateDir: string, io: Io): Promise<{ dumps: string[]; cleanup: () => void }> {
  const t = parseTargetUrl(url, process.env.LEAPFROG_DB_PASSWORD);
  const chain = loadChain(chainFile, { envDir });
  const names = Object.values(chain.projects).flatMap((p) => Object.values(p.databases));
  if (t.kind === 'sqlite') {
    const files = names.map((n) => sqliteFile(t.dir, n)).filter((f) => existsSync(f));
    if (files.length === 0) throw new LeapfrogError('input', `--from ${url}: none of the chain's databases (${names.join(', ')}) is there`);
    return { dumps: files, cleanup: () => {} };
  }
  const dir = path.join(path.resolve(stateDir), 'rehearsals', `from-${process.pid}-${randomBytes(3).toString('hex')}`);
  const cleanup = () => rmSync(dir, { recursive: true, force: true });
  try {
    const dumps = await withTarget(t, async (session) => {
      const out: string[] = [];
      for (const name of names) {
        if (!(await session.exists(name))) continue;
        io.err(`${new Date().toISOString().slice(11, 19)} copying ${name} from ${describeTarget(t)} (mariadb-dump --single-transaction)`);
        const f = await snapshotDatabase(session, name, dir, { level: 1 });
        if (f.file) out.push(f.file);
      }
      return out;
    });
    if (dumps.length === 0) throw new LeapfrogError('input', `--from ${url}: none of the chain's databases (${names.join(', ')}) exists there`);
    return { dumps, cleanup };
  } catch (err) {
    cleanup();
    throw err;
  }
}

export async function rehearseCommand(args: RehearseArgs, io: Io = processIo): Promise<void> {
  whole('jobs', args.jobs, 'connections');
  whole('parallel', args.parallel, 'projects');
  if ((args.dump === undefined) === (args.from === undefined)) {
    throw new LeapfrogError('input', 'rehearse needs exactly one of --dump FILE... (SQL, gzip SQL, or SQLite .sqlite3 files) or --from URL (copy the live databases)');
  }
  const copied = args.from !== undefined ? await dumpsFrom(args.from, args.chain, args.envs, args['state-dir'], io) : undefined;
  try {
    await rehearseDumps(args, copied?.dumps ?? args.dump ?? [], io);
  } finally {
    copied?.cleanup();
  }
}

async function rehearseDumps(args: RehearseArgs, dumps: string[], io: Io): Promise<void> {
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
      .option('dump', { type: 'string', array: true, describe: 'SQL dump (plain or gzip; one per database or one with several), or SQLite .sqlite3 files' })
      .option('from', { type: 'string', describe: 'copy the chain\'s databases from this live target instead (mysql://… consistent dumps, or sqlite:DIR); nothing there is changed' })
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
