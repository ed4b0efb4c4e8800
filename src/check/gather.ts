import { existsSync, readdirSync, statfsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadChain, loadEnv } from '../chain/load.js';
import type { Chain, Version } from '../chain/types.js';
import { envRoot } from '../envs/store.js';
import { LeapfrogError } from '../errors.js';
import { Ledger } from '../ledger/ledger.js';
import { layout } from '../runner/layout.js';
import { mysqlFacts, processesHolding, serverInfo, sqliteFiles } from '../database/inspect.js';
import { neededCount, probeNeeded, probeProject } from '../database/probe.js';
import { withTarget, type TargetSession } from '../database/session.js';
import { describeTarget, parseTargetUrl } from '../database/url.js';
import type { BlockerFact, CheckFacts, EnvFact, LedgerFact, RunTiming } from './facts.js';

/**
 * All of check-migrations' I/O, read once, in an order that keeps the
 * facts honest: server-wide facts (who is connected) before leapfrog opens
 * connections to the chain's databases; nothing opened for writing, no
 * ledger created, no env unpacked.
 */

export interface CheckOptions {
  chain: string;
  db: string;
  stateDir: string;
  cacheDir: string | undefined;
  envs: string | undefined;
  offline: boolean;
  until: string | undefined;
  maxTransactionAge: number;
}

const PARALLEL = 8;

/** `fn` over `items`, at most `limit` at once, results in input order. */
async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array<R>(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      for (let i = next++; i < items.length; i = next++) out[i] = await fn(items[i]!);
    }),
  );
  return out;
}

export async function gatherFacts(o: CheckOptions): Promise<CheckFacts> {
  const target = parseTargetUrl(o.db, process.env.LEAPFROG_DB_PASSWORD);
  const targetDescription = describeTarget(target);
  let chain: Chain | undefined;
  let chainError: LeapfrogError | undefined;
  try {
    chain = loadChain(o.chain, { envDir: o.envs });
  } catch (err) {
    if (!(err instanceof LeapfrogError)) throw err;
    chainError = err;
  }
  const stateDir = path.resolve(o.stateDir);
  const l = chain ? layout(o.stateDir, o.cacheDir, chain, target) : undefined;

  const facts: CheckFacts = {
    chainFile: o.chain,
    chain,
    chainError,
    target,
    targetDescription,
    layout: l,
    offline: o.offline,
    until: o.until,
    maxTransactionAge: o.maxTransactionAge,
    envs: chain && l ? readEnvs(chain, l.cacheDir) : [],
    reach: { ok: false, error: 'not checked' },
    databases: [],
    versions: undefined,
    versionsError: undefined,
    neededCounts: {},
    blockers: [],
    mysql: undefined,
    sqlite: undefined,
    storage: readStorage(stateDir),
    ledger: readLedger(stateDir, chain?.name, targetDescription),
  };

  await withTarget(target, async (session) => {
    if (target.kind === 'sqlite' && !existsSync(target.dir)) {
      facts.reach = { ok: false, error: `the directory ${target.dir} does not exist` };
      return;
    }
    try {
      facts.reach = { ok: true, server: await serverInfo(session) };
    } catch (err) {
      const code = (err as { code?: string }).code;
      facts.reach = { ok: false, error: `cannot connect (${code ? `${code}: ` : ''}${(err as Error).message})` };
      return;
    }
    if (!chain) return;
    const names = Object.values(chain.projects).flatMap((p) => Object.values(p.databases));
    // Before any connection to the chain's databases: ours would count as clients.
    if (target.kind === 'mysql') facts.mysql = await mysqlFacts(session, names);
    const dbs = Object.values(chain.projects).flatMap((p) => Object.entries(p.databases).map(([logical, name]) => ({ project: p.name, logical, name })));
    facts.databases = await mapLimit(dbs, PARALLEL, async (d) => ({ ...d, exists: await session.exists(d.name) }));
    // Projects are probed side by side: on a server, each database has its own
    // connection to open, and one after another that dominates a large target.
    const probed = await mapLimit(Object.values(chain.projects), PARALLEL, (p) =>
      probeProject(session, p).then(
        (v): { v: Record<string, Version>; e?: undefined } => ({ v }),
        (e: unknown) => ({ v: undefined, e: e as Error }),
      ),
    );
    const failed = probed.find((r) => r.e !== undefined);
    if (failed) facts.versionsError = failed.e!.message;
    else facts.versions = Object.fromEntries(Object.keys(chain.projects).map((p, i) => [p, probed[i]!.v!]));
    facts.neededCounts = await probeNeeded(session, chain);
    facts.blockers = await readBlockers(session, chain);
    if (target.kind === 'sqlite') {
      const files = sqliteFiles(target.dir, names);
      facts.sqlite = { files, holders: processesHolding(files.filter((f) => f.exists).map((f) => f.file)) };
    }
  }, { check: false });
  return facts;
}

function readEnvs(chain: Chain, cacheDir: string): EnvFact[] {
  const names = [...new Set(chain.releases.flatMap((r) => r.steps.map((s) => s.env)))];
  return names.map((name) => {
    try {
      const def = loadEnv(chain.envDir, name);
      return {
        name,
        def,
        error: undefined,
        cached: existsSync(envRoot(cacheDir, def.source.sha256)),
        sourceExists: def.source.kind === 'file' ? existsSync(def.source.location) : undefined,
      };
    } catch (err) {
      if (!(err instanceof LeapfrogError)) throw err;
      return { name, def: undefined, error: [err.message, ...err.details].join(' '), cached: false, sourceExists: undefined };
    }
  });
}

/** Free space where the state directory is, or would be: its nearest existing ancestor (nothing is created). */
function readStorage(stateDir: string): CheckFacts['storage'] {
  let dir = stateDir;
  while (!existsSync(dir) && path.dirname(dir) !== dir) dir = path.dirname(dir);
  try {
    const s = statfsSync(dir);
    return { stateDir, measuredAt: dir, freeBytes: s.bavail * s.bsize, error: undefined };
  } catch (err) {
    return { stateDir, measuredAt: dir, freeBytes: undefined, error: (err as Error).message };
  }
}

function alive(host: string, pid: number): boolean {
  if (host !== os.hostname()) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: the process exists but belongs to someone else.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Rehearsals keep a ledger of their own under STATE_DIR/rehearsals/<id>/; the
 * report on production quotes their timings (they are the point of rehearsing).
 */
function rehearsalHistory(stateDir: string, chain: string): RunTiming[] {
  const root = path.join(stateDir, 'rehearsals');
  if (!existsSync(root)) return [];
  const out: RunTiming[] = [];
  for (const dir of readdirSync(root).sort().reverse()) {
    let ledger: Ledger | undefined;
    try {
      ledger = Ledger.openForReading(path.join(root, dir));
    } catch {
      continue; // a damaged rehearsal ledger is no reason to fail the report
    }
    if (!ledger) continue;
    try {
      for (const { run, steps } of ledger.succeededRuns(chain)) {
        out.push({
          runId: run.id,
          label: `rehearsal ${dir} (run ${run.id})`,
          kind: 'rehearsal',
          target: run.target,
          finishedAt: run.finished_at,
          steps: steps.map((s) => ({ stepId: s.step_id, project: s.project, release: s.release, status: s.status, durationMs: s.duration_ms })),
        });
      }
    } finally {
      ledger.close();
    }
  }
  return out;
}

function readLedger(stateDir: string, chain: string | undefined, target: string): LedgerFact {
  const file = path.join(stateDir, 'ledger.sqlite3');
  const empty: LedgerFact = { file, exists: existsSync(file), error: undefined, unfinished: [], history: [], done: new Set() };
  let ledger: Ledger | undefined;
  try {
    ledger = Ledger.openForReading(stateDir);
  } catch (err) {
    if (!(err instanceof LeapfrogError)) throw err;
    return { ...empty, error: err.message };
  }
  // No ledger of real runs yet (the usual case before a window): rehearsals may still have timed the chain.
  if (!ledger) return { ...empty, history: chain ? rehearsalHistory(stateDir, chain) : [] };
  try {
    return {
      file,
      exists: true,
      error: undefined,
      unfinished: ledger.unfinishedSteps(target).map((s) => ({
        runId: s.run_id,
        chain: s.chain,
        stepId: s.step_id,
        startedAt: s.started_at,
        logPath: s.log_path,
        runStatus: s.run_status,
        host: s.run_host,
        pid: s.run_pid,
        alive: s.run_status === 'running' && alive(s.run_host, s.run_pid),
      })),
      history: chain
        ? [...ledger.succeededRuns(chain).map(({ run, steps }) => ({
            runId: run.id,
            label: `${run.kind === 'rehearsal' ? 'rehearsal ' : ''}run ${run.id}`,
            kind: run.kind,
            target: run.target,
            finishedAt: run.finished_at,
            steps: steps.map((s) => ({ stepId: s.step_id, project: s.project, release: s.release, status: s.status, durationMs: s.duration_ms })),
          })), ...rehearsalHistory(stateDir, chain)].sort((a, b) => (b.finishedAt ?? '').localeCompare(a.finishedAt ?? ''))
        : [],
      done: chain ? ledger.succeededSteps(chain, target) : new Set(),
    };
  } finally {
    ledger.close();
  }
}

/** Errors that mean "this database has no such table or column yet" (an earlier migration adds it). */
function missingObject(err: unknown): boolean {
  const e = err as { errno?: number; code?: string; message?: string };
  // MySQL/MariaDB: ER_NO_SUCH_TABLE 1146, ER_BAD_FIELD_ERROR 1054. SQLite: "no such table" / "no such column".
  return e.errno === 1146 || e.errno === 1054 || /no such (table|column)/i.test(e.message ?? '');
}

async function readBlockers(session: TargetSession, chain: Chain): Promise<BlockerFact[]> {
  const all = Object.values(chain.projects).flatMap((p) => (p.blockers ?? []).map((b) => ({ p, b })));
  return mapLimit(all, PARALLEL, async ({ p, b }): Promise<BlockerFact> => {
    const dbName = p.databases[b.database]!;
    const base = { project: p.name, name: b.name, database: b.database, dbName, message: b.message, fixedBy: b.fixedBy };
    if (!(await session.exists(dbName))) return { ...base, outcome: { kind: 'not-yet', reason: `database ${dbName} does not exist yet` } };
    try {
      return { ...base, outcome: { kind: 'count', count: await neededCount(session, dbName, b.query) } };
    } catch (err) {
      // knex prefixes the driver's message with the query and " - ".
      const raw = (err as Error).message;
      const msg = raw.includes(' - ') ? raw.slice(raw.lastIndexOf(' - ') + 3) : raw;
      return { ...base, outcome: missingObject(err) ? { kind: 'not-yet', reason: msg } : { kind: 'error', reason: msg } };
    }
  });
}
