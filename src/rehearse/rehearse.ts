import { copyFileSync, existsSync, mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { plan } from '../chain/plan.js';
import type { Chain, EnvDef, Version } from '../chain/types.js';
import { LeapfrogError } from '../errors.js';
import { withLedger } from '../ledger/ledger.js';
import type { RunEvent } from '../runner/events.js';
import { layout } from '../runner/layout.js';
import { executePlan, prepare } from '../runner/runner.js';
import { readState } from '../runner/state.js';
import { dropDatabases, tableRowCounts } from '../database/raw.js';
import { withTarget, type TargetSession } from '../database/session.js';
import { describeTarget, type Target } from '../database/url.js';
import { versionsJson } from '../report/render.js';
import { restoreDumps, type RestoreProgress, type RestoreResult } from './restore.js';
import { audit, failuresFromLedger, hopsFromLedger, predict, REHEARSAL_FORMAT, type Counts, type RehearsalReport } from './report.js';
import { withScratchServer } from './scratch-server.js';

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
  | { type: 'run'; event: RunEvent };

export interface RehearseOptions {
  chain: Chain;
  envs: ReadonlyMap<string, EnvDef>;
  stateDir: string;
  cacheDir: string | undefined;
  dumps: readonly string[];
  place: RehearsalPlace;
  keep: boolean;
  jobs: number;
  parallel: number;
  emit: (e: RehearsalEvent) => void;
  signal?: AbortSignal | undefined;
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

function stamp(): string {
  return new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '').replace('T', '-');
}

export async function rehearse(o: RehearseOptions): Promise<{ report: RehearsalReport; error: LeapfrogError | undefined }> {
  const dir = path.join(path.resolve(o.stateDir), 'rehearsals', `${stamp()}-${process.pid}`);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const phase = (message: string) => o.emit({ type: 'phase', message });
  const cacheDir = o.cacheDir ?? path.join(path.resolve(o.stateDir), 'envs');

  const body = async (target: Target, chain: Chain, restored: RestoreResult | null, place: RehearsalReport['target']) =>
    withLedger(dir, (ledger) =>
      withTarget(target, async (session) => {
        phase('counting rows before the chain');
        const before = await countAll(session, chain);
        const l = layout(dir, cacheDir, chain, target);
        const p = plan({ ...(await readState(chain, session, ledger)), until: undefined });
        const steps = prepare(chain, p, target, l);
        let runId: number | null = null;
        let error: LeapfrogError | undefined;
        let versions: Record<string, Record<string, Version>> = {};
        if (steps.length > 0) {
          phase(`running ${steps.length} steps of chain ${chain.name} (--parallel ${o.parallel})`);
          const r = await executePlan(
            { chain, envs: o.envs, target, layout: l, ledger, session, parallel: o.parallel, emit: (event) => o.emit({ type: 'run', event }), signal: o.signal, kind: 'rehearsal' },
            p,
            steps,
            undefined,
          );
          runId = r.runId;
          error = r.error;
          versions = r.versions;
        }
        phase('counting rows after the chain');
        const after = await countAll(session, chain);
        const run = runId === null ? undefined : ledger.run(runId);
        const rows = runId === null ? [] : ledger.steps(runId);
        const hops = run ? hopsFromLedger(run, rows) : [];
        const ran = new Set(rows.filter((r) => r.status === 'succeeded').map((r) => r.step_id));
        const a = audit(chain, before, after, ran);
        const report: RehearsalReport = {
          format: REHEARSAL_FORMAT,
          chain: chain.name,
          status: error === undefined && a.status === 'passed' ? 'succeeded' : 'failed',
          target: place,
          stateDir: dir,
          ledger: ledger.file,
          run: runId,
          restore: restored && { files: [...o.dumps], bytes: restored.bytes, durationMs: restored.durationMs, jobs: o.jobs, statements: restored.statements },
          hops,
          versions: versionsJson(Object.keys(versions).length > 0 ? versions : {}),
          failures: failuresFromLedger(rows),
          audit: a,
          prediction: predict(run, hops, o.parallel),
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
      }),
    );

  const restore = async (target: MysqlTarget, rename?: (db: string) => string) => {
    phase(`restoring ${o.dumps.length} dump file(s) into ${describeTarget(target)} over ${o.jobs} connections`);
    return restoreDumps({ files: o.dumps, target, jobs: o.jobs, rename, onProgress: (progress) => o.emit({ type: 'restore', progress }), signal: o.signal });
  };

  switch (o.place.mode) {
    case 'scratch':
      return withScratchServer({ parentDir: dir, mysqld: o.place.mysqld, keep: o.keep, log: phase }, async (server) => {
        const restored = await restore(server.target);
        return body(server.target, o.chain, restored, { mode: 'scratch', description: describeTarget(server.target), kept: o.keep });
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
      try {
        const restored = await restore(target, (db) => {
          created.add(prefix + db);
          return prefix + db;
        });
        return await body(target, chain, restored, { mode: 'server', description: describeTarget(target), prefix, kept: o.keep });
      } finally {
        if (!o.keep) {
          phase(`dropping the rehearsal's databases (${prefix}*)`);
          await dropDatabases(target, [...created]);
        }
      }
    }
    case 'sqlite': {
      const dbDir = path.join(dir, 'db');
      mkdirSync(dbDir, { recursive: true });
      try {
        for (const f of o.dumps) {
          if (!existsSync(f)) throw new LeapfrogError('input', `--dump ${f}: no such file`);
          copyFileSync(f, path.join(dbDir, path.basename(f)));
        }
        phase(`copied ${o.dumps.length} SQLite file(s) into ${dbDir}`);
        const target: Target = { kind: 'sqlite', dir: dbDir };
        return await body(target, o.chain, null, { mode: 'sqlite', description: describeTarget(target), kept: o.keep });
      } finally {
        if (!o.keep) rmSync(dbDir, { recursive: true, force: true });
      }
    }
  }
}
