import { existsSync, readdirSync, statfsSync } from 'node:fs';
import path from 'node:path';
import { loadChain, loadEnv } from '../chain/load.js';
import type { Chain } from '../chain/types.js';
import { envRoot } from '../envs/store.js';
import { probeBubblewrap } from '../sandbox/bwrap.js';
import { mapLimit } from '../concurrency.js';
import { LeapfrogError } from '../errors.js';
import { Ledger } from '../ledger/ledger.js';
import { layout } from '../core/layout.js';
import { neededCount } from '../database/probe.js';
import { withTarget, type TargetSession } from '../database/session.js';
import { describePlacement, singleServer } from '../database/placement.js';
import { placementOf, serversFrom } from '../core/context.js';
import { preflight } from '../core/preflight.js';
import type { SnapshotChoice } from '../runner/snapshot-plan.js';
import type { BlockerFact, CheckFacts, EnvFact, RunTiming } from './facts.js';

/**
 * All of check-migrations' I/O, read once, in an order that keeps the
 * facts honest: server-wide facts (who is connected) before leapfrog opens
 * connections to the chain's databases; nothing opened for writing, no
 * ledger created, no env unpacked.
 */

export interface CheckOptions {
  chain: string;
  db: string | readonly string[];
  defaultsFile: string | undefined;
  stateDir: string;
  cacheDir: string | undefined;
  envs: string | undefined;
  offline: boolean;
  until: string | undefined;
  maxTransactionAge: number;
  snapshot?: SnapshotChoice | undefined;
}

const PARALLEL = 8;

export async function gatherFacts(o: CheckOptions): Promise<CheckFacts> {
  const given = serversFrom({ db: o.db, defaultsFile: o.defaultsFile });
  let chain: Chain | undefined;
  let chainError: LeapfrogError | undefined;
  try {
    chain = loadChain(o.chain, { envDir: o.envs });
  } catch (err) {
    if (!(err instanceof LeapfrogError)) throw err;
    chainError = err;
  }
  // Without a chain nothing says where its servers' databases are: the default server alone is checked.
  const target = chain ? placementOf(chain, given) : singleServer(given.default);
  const targetDescription = describePlacement(target);
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
    snapshot: o.snapshot ?? 'auto',
    envs: chain && l ? readEnvs(chain, l.cacheDir) : [],
    sandbox: undefined,
    reach: { ok: false, error: 'not checked' },
    databases: [],
    preflight: undefined,
    blockers: [],
    mysql: undefined,
    sqlite: undefined,
    storage: readStorage(stateDir),
    ledger: { file: path.join(stateDir, 'ledger.sqlite3'), exists: false, error: undefined, history: [], snapshots: [] },
  };
  let ledger: Ledger | undefined;
  try {
    ledger = Ledger.openForReading(stateDir);
    facts.ledger = {
      ...facts.ledger,
      exists: ledger !== undefined,
      history: chain ? history(ledger, stateDir, chain.name) : [],
      snapshots: chain && ledger ? ledger.snapshotsOf(chain.name, targetDescription).reverse().map((s) => ({ database: s.database, durationMs: s.duration_ms, bytes: s.bytes, createdAt: s.created_at })) : [],
    };
  } catch (err) {
    if (!(err instanceof LeapfrogError)) throw err;
    facts.ledger = { ...facts.ledger, exists: true, error: err.message };
  }
  try {
    await readTarget(facts, ledger);
  } finally {
    ledger?.close();
  }
  // The same probe `run` makes before its first step (core/run.ts): a rootfs env whose steps cannot start is a Failure now.
  if (facts.envs.some((e) => e.def?.kind === 'rootfs')) {
    const probe = await probeBubblewrap();
    facts.sandbox = 'why' in probe ? { ok: false, why: probe.why } : { ok: true };
  }
  return facts;
}

/** Everything read from the target, in one session: server-wide facts before leapfrog opens connections to the chain's databases. */
async function readTarget(facts: CheckFacts, ledger: Ledger | undefined): Promise<void> {
  const { target, chain } = facts;

  await withTarget(target, async (session) => {
    try {
      await session.connect();
      facts.reach = { ok: true, server: await session.serverInfo() };
    } catch (err) {
      // The driver's own error when there is one (a refused login, a server down); connect()'s words otherwise (a missing SQLite directory).
      const cause = err instanceof LeapfrogError && err.cause !== undefined ? err.cause : err;
      const code = (cause as { code?: string }).code;
      facts.reach = { ok: false, error: cause instanceof LeapfrogError ? cause.message : `cannot connect (${code ? `${code}: ` : ''}${(cause as Error).message})` };
      return;
    }
    if (!chain) return;
    const names = Object.values(chain.projects).flatMap((p) => Object.values(p.databases));
    // Before any connection to the chain's databases: ours would count as clients.
    const server = await session.inspect(names);
    if (server.kind === 'mysql') facts.mysql = server.mysql;
    else facts.sqlite = { files: server.files, holders: server.holders };
    const dbs = Object.values(chain.projects).flatMap((p) => Object.entries(p.databases).map(([logical, name]) => ({ project: p.name, logical, name })));
    facts.databases = await mapLimit(dbs, PARALLEL, async (d) => ({ ...d, exists: await session.exists(d.name) }));
    facts.preflight = await preflight({ chain, layout: facts.layout!, session, ledger }, { until: facts.until });
    facts.blockers = await readBlockers(session, chain);
  }, { check: false });
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
      out.push(...timings(ledger, chain, (id) => `rehearsal ${dir} (run ${id})`));
    } finally {
      ledger.close();
    }
  }
  return out;
}

function timings(ledger: Ledger, chain: string, label: (run: number, kind: string) => string): RunTiming[] {
  return ledger.succeededRuns(chain).map(({ run, steps }) => ({
    runId: run.id,
    label: label(run.id, run.kind),
    kind: run.kind,
    target: run.target,
    finishedAt: run.finished_at,
    steps: steps.map((s) => ({ stepId: s.step_id, project: s.project, release: s.release, status: s.status, durationMs: s.duration_ms })),
  }));
}

/** Succeeded runs of the chain here and in rehearsals, newest first. */
function history(ledger: Ledger | undefined, stateDir: string, chain: string): RunTiming[] {
  const own = ledger ? timings(ledger, chain, (id, kind) => `${kind === 'rehearsal' ? 'rehearsal ' : ''}run ${id}`) : [];
  return [...own, ...rehearsalHistory(stateDir, chain)].sort((a, b) => (b.finishedAt ?? '').localeCompare(a.finishedAt ?? ''));
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
      const msg = (err as Error).message;
      return { ...base, outcome: missingObject(err) ? { kind: 'not-yet', reason: msg } : { kind: 'error', reason: msg } };
    }
  });
}
