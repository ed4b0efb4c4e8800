import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { loadChain, loadChainEnvs } from '../chain/load.js';
import { targetFrom } from '../core/context.js';
import { LeapfrogError } from '../errors.js';
import { copyFrom } from '../rehearse/from.js';
import { rehearse, type RehearsalPlace } from '../rehearse/rehearse.js';
import { wantColor } from '../report/progress-frame.js';
import { lineRenderer, liveRenderer } from '../report/progress.js';
import { rehearsalHtml, rehearsalText } from '../report/rehearsal.js';
import { restoreRenderer } from '../report/restore-progress.js';
import { maskKnown } from '../report/secrets.js';
import type { Io } from './io.js';
import { bool, formatOf, num, optionalNum, provisionFrom, required, str, type Args, stateDirOf } from './options.js';

const stamp = () => new Date().toISOString().slice(11, 19);

/** Where to rehearse: --server (prefixed databases), SQLite files (copied), or a scratch server leapfrog starts. */
function placeOf(args: Args, dumps: readonly string[]): RehearsalPlace {
  const prefix = str(args, 'prefix');
  if (prefix !== undefined && !/^[A-Za-z0-9_]+$/.test(prefix)) throw new LeapfrogError('input', `--prefix ${prefix}: letters, digits and _ only`);
  const sqlite = dumps.filter((d) => d.endsWith('.sqlite3'));
  if (sqlite.length > 0 && sqlite.length < dumps.length) throw new LeapfrogError('input', '--dump: mix of SQLite files and SQL dumps; rehearse one kind at a time');
  const server = str(args, 'server');
  if (server === undefined) return sqlite.length > 0 ? { mode: 'sqlite' } : { mode: 'scratch', mysqld: str(args, 'mysqld') };
  const t = targetFrom({ db: server, defaultsFile: str(args, 'defaults-file') });
  if (t.kind !== 'mysql') throw new LeapfrogError('input', `--server ${server}: must be a MySQL/MariaDB server (mysql://user@host:port); SQLite rehearsals take the .sqlite3 files as --dump`);
  if (sqlite.length > 0) throw new LeapfrogError('input', '--server takes SQL dumps, not SQLite files');
  return { mode: 'server', target: t, prefix: prefix ?? `lfr${randomBytes(3).toString('hex')}_` };
}

/** `leapfrog rehearse`: restore a copy somewhere nothing real lives, run the chain there, audit, report. */
export async function handler(args: Args, io: Io): Promise<void> {
  const chainFile = required(args, 'chain', 'the chain file');
  const jobs = num(args, 'jobs', { whole: true, min: 1, what: 'of connections' });
  const parallel = num(args, 'parallel', { whole: true, min: 1, what: 'of projects' });
  const maxStatementBytes = optionalNum(args, 'max-statement-bytes', { whole: true, min: 1, what: 'of bytes' });
  const given = (args.dump as string[] | undefined) ?? undefined;
  const from = str(args, 'from');
  if ((given === undefined) === (from === undefined)) {
    throw new LeapfrogError('input', 'rehearse needs exactly one of --dump FILE... (SQL, gzip SQL, or SQLite .sqlite3 files) or --from URL (copy the live databases)');
  }
  const stateDir = stateDirOf(args);
  const chain = loadChain(chainFile, { envDir: str(args, 'envs') });
  const envs = loadChainEnvs(chain);
  const provision = provisionFrom(args, [chainFile]);
  const copied = from !== undefined ? await copyFrom(targetFrom({ db: from, defaultsFile: str(args, 'defaults-file') }), from, chain, stateDir, io.err) : undefined;
  const dumps = copied?.dumps ?? given ?? [];
  const runRenderer = io.tty ? liveRenderer(io.errRaw, io.columns, { color: wantColor(bool(args, 'color')), parallel }) : lineRenderer(io.err);
  const restoreBar = restoreRenderer(io);
  let result;
  try {
    if (dumps.length === 0 && copied?.live === undefined) throw new LeapfrogError('input', 'rehearse needs --dump FILE (SQL, gzip SQL, or SQLite .sqlite3 files)');
    result = await rehearse({
      chain,
      envs,
      stateDir,
      cacheDir: str(args, 'cache-dir'),
      dumps,
      live: copied?.live,
      place: placeOf(args, dumps),
      keep: bool(args, 'keep'),
      allowNetwork: bool(args, 'allow-network'),
      jobs,
      maxStatementBytes,
      parallel,
      provision,
      emit: (e) => {
        if (e.type === 'phase') runRenderer.log(`${stamp()} ${e.message}`);
        else if (e.type === 'restore') restoreBar.on(e);
        else if (e.event.type === 'note' || e.event.type === 'warning' || e.event.type === 'signal') runRenderer.log(`${stamp()} ${e.event.text}`);
        else runRenderer.on(e.event);
      },
    });
  } finally {
    restoreBar.stop();
    runRenderer.stop();
    copied?.cleanup();
  }
  const { report, error } = result;
  const html = str(args, 'report');
  if (html) {
    writeFileSync(html, maskKnown(rehearsalHtml(report, { dir: path.dirname(path.resolve(html)) })));
    io.err(`report: ${html}`);
  }
  io.out(formatOf(args) === 'json' ? JSON.stringify(report, null, 2) : rehearsalText(report));
  if (error) throw error;
}
