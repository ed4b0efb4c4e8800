import { copyFileSync, existsSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import type { Chain, EnvDef } from '../chain/types.js';
import { LeapfrogError } from '../errors.js';
import { Ledger, type RunRow } from '../ledger/ledger.js';
import type { CoreContext } from '../core/context.js';
import { layout } from '../core/layout.js';
import { singleServer } from '../database/placement.js';
import { applyRewrites } from './rewrites.js';
import { run, type CoreEvent } from '../core/run.js';
import { withStopSignals } from '../core/signals.js';
import type { ProvisionOptions } from '../envs/store.js';
import { withConfinedAccount } from '../database/confined-account.js';
import { dropDatabases, tableRowCounts } from '../database/raw.js';
import { withTarget, type TargetSession } from '../database/session.js';
import { describeTarget, type Target } from '../database/url.js';
import { versionsJson } from '../report/render.js';
import { isGzip } from './dump-reader.js';
import { restoreDumps, type RestoreProgress, type RestoreResult } from './restore.js';
import { copyLive } from './live-copy.js';
import { audit, failuresFromLedger, hopsFromLedger, predict, REHEARSAL_FORMAT, slowestSteps, withPrevious, type Counts, type HopReport, type RehearsalReport } from './report.js';
import { rehearsalRuns } from '../ledger/rehearsals.js';
import { THROWAWAY_SETTINGS, withScratchServer } from './scratch-server.js';
import { LEAPFROG_VERSION } from '../version.js';
import { makeDirs } from '../dirs.js';

/**
 * A rehearsal: restore the dumps somewhere nothing real lives, run the
 * chain there with a ledger of its own (runs recorded as kind
 * 'rehearsal'), count rows before and after, and report. Wherever it ran,
 * what it created is removed afterwards unless `keep`, however it ended.
 */

type MysqlTarget = Extract<Target, { kind: 'mysql' }>;

export type RehearsalPlace =
  /** A throwaway server leapfrog starts (the default). */
  | { mode: 'scratch'; mysqld?: string | undefined }
  /** An existing server; every database of the chain gets `prefix` so nothing real is touched. */
  | { mode: 'server'; target: MysqlTarget; prefix: string }
  /** SQLite: the dumps are database files, copied into the rehearsal's directory. */
  | { mode: 'sqlite' };

export type RehearsalEvent =
  | { type: 'phase'; message: string }
  | { type: 'restore'; progress: RestoreProgress }
  | { type: 'run'; event: CoreEvent };

export interface RehearseOptions {
  chain: Chain;
  envs: ReadonlyMap<string, EnvDef>;
  stateDir: string;
  cacheDir: string | undefined;
  dumps: readonly string[];
  /** --from a MySQL/MariaDB server: copy these databases from it live instead of restoring dumps. */
  live?: { source: MysqlTarget; databases: readonly string[] } | undefined;
  place: RehearsalPlace;
  keep: boolean;
  jobs: number;
  /** --max-statement-bytes (default: the restore's). */
  maxStatementBytes?: number | undefined;
  parallel: number;
  /** Let the steps of a scratch or SQLite rehearsal reach the network (they are isolated by default). */
  allowNetwork?: boolean | undefined;
  emit: (e: RehearsalEvent) => void;
  provision: ProvisionOptions;
}

/** The rehearsal's run row, read back from its own ledger for the report. */
function readRun(dir: string, runId: number): RunRow | undefined {
  const ledger = Ledger.openForReading(dir);
  try {
    return ledger?.run(runId);
  } finally {
    ledger?.close();
  }
}

/** The chain with every database renamed `prefix + name`: what `--server` rehearses on. */
export function prefixedChain(chain: Chain, prefix: string): Chain {
  return {
    ...chain,
    projects: Object.fromEntries(
      Object.entries(chain.projects).map(([name, p]) => [name, { ...p, databases: Object.fromEntries(Object.entries(p.databases).map(([l, db]) => [l, prefix + db])) }]),
    ),
  };
}

async function countAll(session: TargetSession, chain: Chain): Promise<Counts> {
  const out: Counts = {};
  for (const [project, def] of Object.entries(chain.projects)) {
    out[project] = {};
    for (const [db, name] of Object.entries(def.databases)) out[project][db] = await tableRowCounts(session, name);
  }
  return out;
}

/** The newest succeeded rehearsal of `chain` under `stateDir` other than `exclude`, with its hops. */
function previousRehearsal(stateDir: string, chain: string, exclude: string): { rehearsal: string; finishedAt: string | null; hops: HopReport[] } | undefined {
  for (const h of rehearsalRuns(stateDir)) {
    if (h.dir === exclude) continue;
    const run = h.runs.find((r) => r.chain === chain && r.status === 'succeeded');
    if (!run) continue;
    let ledger: Ledger | undefined;
    try {
      ledger = Ledger.openForReading(h.dir);
      if (ledger) return { rehearsal: h.id, finishedAt: run.finished_at, hops: hopsFromLedger(run, ledger.steps(run.id)) };
    } catch {
      continue; // a damaged ledger gives no comparison; it is no reason to fail the rehearsal
    } finally {
      ledger?.close();
    }
  }
  return undefined;
}

/** The dumps' sizes as they were when restored (a file gone meanwhile counts 0 bytes). */
function dumpSizes(files: readonly string[]): RehearsalReport['dumps'] {
  return files.map((file) => {
    try {
      return { file, bytes: statSync(file).size };
    } catch {
      return { file, bytes: 0 };
    }
  });
}

/** About how many bytes the dumps load (a gzip dump counted four times its size, what SQL text usually shrinks by), for the scratch server's redo log. */
function dumpBytes(files: readonly string[]): number {
  return dumpSizes(files).reduce((n, d) => {
    let gzip = false;
    try {
      gzip = isGzip(d.file);
    } catch {
      // Unreadable: the restore says so.
    }
    return n + d.bytes * (gzip ? 4 : 1);
  }, 0);
}

const CAVEAT = `the scratch server ran with settings only a throwaway server may use (${THROWAWAY_SETTINGS.map((x) => x.says).join('; ')}), so these timings are optimistic: a production server, durable, writes more per commit`;

function stamp(): string {
  return new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '').replace('T', '-');
}

/**
 * Stop signals (SIGINT, SIGTERM, SIGHUP) stop the restore or the run at a
 * safe point, then what the rehearsal created is removed as usual.
 */
export function rehearse(o: RehearseOptions): Promise<{ report: RehearsalReport; error: LeapfrogError | undefined }> {
  return withStopSignals((message) => o.emit({ type: 'phase', message: `${message}; then removing the rehearsal's databases` }), (signal) => rehearseIn(o, signal));
}

async function rehearseIn(o: RehearseOptions, signal: AbortSignal): Promise<{ report: RehearsalReport; error: LeapfrogError | undefined }> {
  const dir = path.join(path.resolve(o.stateDir), 'rehearsals', `${stamp()}-${process.pid}`);
  makeDirs(dir, '--state-dir');
  const phase = (message: string) => o.emit({ type: 'phase', message });
  const cacheDir = o.cacheDir ?? path.join(path.resolve(o.stateDir), 'envs');

  // A copy's steps get a network namespace of their own, reaching the copy through a file or a unix socket:
  // nothing in the restored data (nova keeps each cell's database URL in nova_api.cell_mappings) can lead
  // a step to the server it was copied from. --server rehearses over TCP: its account is confined instead.
  const body = async (target: Target, chain: Chain, restored: RestoreResult | null, place: RehearsalReport['target'], isolate: boolean) => {
    const counts = () => withTarget(target, (session) => countAll(session, chain));
    phase('counting rows before the chain');
    const before = await counts();
    const server = await withTarget(target, (session) => session.serverInfo());
    if (Object.values(chain.projects).some((p) => (p.rehearsal ?? []).length > 0)) {
      phase('rewriting what the copy keeps of the servers it came from (the chain\'s rehearsal: statements)');
      await withTarget(target, (session) => applyRewrites(chain, session, phase));
    }
    const placed = singleServer(target);
    const ctx: CoreContext = { chain, envs: o.envs, target: placed, layout: layout(dir, cacheDir, chain, placed), provision: o.provision };
    phase(`running chain ${chain.name} (--parallel ${o.parallel})`);
    // The same path as a real run, on the copy: its own ledger, no snapshots (the dumps are the restore point).
    const outcome = await run(ctx, { until: undefined, parallel: o.parallel, snapshot: 'none', waitLockSeconds: 0, force: false, resume: false, acceptDrift: false, isolateNetwork: isolate, kind: 'rehearsal', historyDir: path.resolve(o.stateDir) }, (e) => o.emit({ type: 'run', event: e }));
    const result = outcome.result;
    const runId = result?.runId ?? null;
    let error = result?.error;
    phase('counting rows after the chain');
    const after = await counts();
    const rows = result?.steps ?? [];
    const runRow = runId === null ? undefined : readRun(dir, runId);
    const previous = previousRehearsal(o.stateDir, chain.name, dir);
    const hops = withPrevious(runRow ? hopsFromLedger(runRow, rows) : [], previous?.hops);
    const ran = new Set(rows.filter((r) => r.status === 'succeeded').map((r) => r.step_id));
    const a = audit(chain, before, after, ran, error === undefined);
    const status = a.status === 'passed' ? 'succeeded' : 'failed';
    const report: RehearsalReport = {
      format: REHEARSAL_FORMAT,
      chain: chain.name,
      status,
      target: place,
      stateDir: dir,
      ledger: path.join(dir, 'ledger.sqlite3'),
      run: runId,
      restore: restored && { files: [...o.dumps], bytes: restored.bytes, durationMs: restored.durationMs, jobs: o.jobs, statements: restored.statements },
      hops,
      versions: versionsJson(result?.versions ?? {}),
      failures: failuresFromLedger(rows),
      audit: a,
      createdAt: new Date().toISOString(),
      leapfrogVersion: LEAPFROG_VERSION,
      chainFile: o.chain.file,
      chainSha256: o.chain.sha256,
      dumps: dumpSizes(o.dumps),
      server,
      envs: [...o.envs.values()].map((e) => ({ name: e.name, sha256: e.source.sha256 })).sort((x, y) => x.name.localeCompare(y.name)),
      slowest: slowestSteps(hops),
      previous: previous ? { rehearsal: previous.rehearsal, finishedAt: previous.finishedAt } : null,
      caveat: place.mode === 'scratch' ? CAVEAT : null,
      // A failed rehearsal stopped short of the chain's end (or lost rows): its times are no window to plan by.
      prediction: status === 'succeeded' ? predict(runRow, hops, o.parallel) : null,
      error: error ? error.message : null,
    };
    if (error === undefined && a.status === 'failed') {
      const lost = a.rows.filter((r) => r.verdict === 'lost');
      error = new LeapfrogError(
        'step-failed',
        `rehearsal audit: the chain lost rows in ${lost.length} table(s) that no step declares deleting from: ${lost.map((r) => `${r.project}.${r.database}.${r.table} ${r.before} → ${r.after}`).join(', ')}. Declare deletes: [table] on the step that removes them if that is intended`,
      );
      report.error = error.message;
    }
    return { report, error };
  };

  const restore = async (target: MysqlTarget, rename?: (db: string) => string): Promise<RestoreResult> => {
    if (o.live) {
      phase(`copying ${o.live.databases.join(', ')} live from ${describeTarget(o.live.source)} into ${describeTarget(target)} over ${o.jobs} connections, all from one snapshot`);
      const live = { source: o.live.source, target, databases: o.live.databases, jobs: o.jobs, rename, ownDefiner: rename !== undefined, log: phase, signal };
      const copied = await copyLive({ ...live, onProgress: (progress) => o.emit({ type: 'restore', progress }) });
      phase(`copied ${copied.rows} rows (${(copied.bytes / 1024 / 1024).toFixed(0)} MB) in ${(copied.durationMs / 1000).toFixed(1)} s; writers on the source were held ${copied.lockMs.toFixed(0)} ms by the global read lock`);
      return copied;
    }
    phase(`restoring ${o.dumps.length} dump file(s) into ${describeTarget(target)} over ${o.jobs} connections`);
    // On --server the restore runs as the confined account, which may be no other definer than itself.
    return restoreDumps({ files: o.dumps, target, jobs: o.jobs, maxStatementBytes: o.maxStatementBytes, rename, ownDefiner: rename !== undefined, onProgress: (progress) => o.emit({ type: 'restore', progress }), signal });
  };

  switch (o.place.mode) {
    case 'scratch':
      return withScratchServer({ parentDir: dir, mysqld: o.place.mysqld, keep: o.keep, log: phase, dataBytes: dumpBytes(o.dumps) }, async (server) => {
        const restored = await restore(server.target);
        const steps: MysqlTarget = { ...server.target, socket: server.socket };
        return body(o.allowNetwork ? server.target : steps, o.chain, restored, { mode: 'scratch', description: describeTarget(server.target), kept: o.keep }, !o.allowNetwork);
      });
    case 'server': {
      const { target, prefix } = o.place;
      const chain = prefixedChain(o.chain, prefix);
      const names = Object.values(chain.projects).flatMap((p) => Object.values(p.databases));
      const clash = await withTarget(target, async (s) => {
        const out: string[] = [];
        for (const n of names) if (await s.exists(n)) out.push(n);
        return out;
      });
      if (clash.length > 0) {
        throw new LeapfrogError('refused', `--server: database(s) ${clash.join(', ')} already exist on ${describeTarget(target)}; a rehearsal never touches existing databases: choose another --prefix, or drop them`);
      }
      const created = new Set(names);
      // Restore and run as an account the server confines to prefix*: a dump statement or a step that names
      // another database is refused by the server itself. Its databases are dropped by the server's own account.
      return withConfinedAccount(target, prefix, phase, async (account) => {
        try {
          const restored = await restore(account.target, (db) => {
            created.add(prefix + db);
            return prefix + db;
          });
          return await body(account.target, chain, restored, { mode: 'server', description: describeTarget(target), prefix, kept: o.keep }, false);
        } finally {
          if (!o.keep) {
            phase(`dropping the rehearsal's databases (${prefix}*)`);
            await dropDatabases(target, [...created]);
          }
        }
      });
    }
    case 'sqlite': {
      const dbDir = path.join(dir, 'db');
      makeDirs(dbDir, '--state-dir');
      try {
        for (const f of o.dumps) {
          if (!existsSync(f)) throw new LeapfrogError('input', `--dump ${f}: no such file`);
          copyFileSync(f, path.join(dbDir, path.basename(f)));
        }
        phase(`copied ${o.dumps.length} SQLite file(s) into ${dbDir}`);
        const target: Target = { kind: 'sqlite', dir: dbDir };
        return await body(target, o.chain, null, { mode: 'sqlite', description: describeTarget(target), kept: o.keep }, !o.allowNetwork);
      } finally {
        if (!o.keep) rmSync(dbDir, { recursive: true, force: true });
      }
    }
  }
}
