import { existsSync, statfsSync } from 'node:fs';
import path from 'node:path';
import { loadChain, loadEnv } from '../chain/load.js';
import type { Chain } from '../chain/types.js';
import { envRoot } from '../envs/store.js';
import { probeBubblewrap } from '../sandbox/bwrap.js';
import { mapLimit } from '../concurrency.js';
import { LeapfrogError } from '../errors.js';
import { Ledger } from '../ledger/ledger.js';
import { layout, type Layout } from '../core/layout.js';
import { readEntry, verifyEntry, type VerifyDepth } from '../envs/cache.js';
import { cacheFlags, commandLine } from '../state-dir.js';
import { neededCount } from '../database/probe.js';
import { withTarget, type TargetSession } from '../database/session.js';
import { describePlacement, singleServer } from '../database/placement.js';
import { placementOf, serversFrom, targetFlags } from '../core/context.js';
import { preflight } from '../core/preflight.js';
import type { SnapshotChoice } from '../runner/snapshot-plan.js';
import type { BlockerFact, CheckFacts, EnvFact } from './facts.js';
import { chainHistory } from './history.js';

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
  /** Hash every file of the cached envs (else sizes, modes and mtimes). */
  verifyEnvs: boolean;
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
  const l = chain ? layout(o.stateDir, o.cacheDir, chain, target, targetFlags(chain.file, { db: o.db, defaultsFile: o.defaultsFile, envDir: o.envs }, given)) : undefined;

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
    envs: chain && l ? await readEnvs(chain, l, o.envs, o.verifyEnvs ? 'hash' : 'stat') : [],
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
      history: chain ? chainHistory(ledger, stateDir, chain.name) : [],
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

/** The chain's envs, each cached one checked against its manifest (the check `run` makes, hashing every file unless --no-verify-envs). */
async function readEnvs(chain: Chain, l: Layout, envDir: string | undefined, depth: VerifyDepth): Promise<EnvFact[]> {
  const names = [...new Set(chain.releases.flatMap((r) => r.steps.map((s) => s.env)))];
  return mapLimit(names, 2, async (name): Promise<EnvFact> => {
    const repair = commandLine(['envs', 'repair', name, '--chain', chain.file, ...(envDir !== undefined ? ['--envs', path.resolve(envDir)] : []), ...l.stateFlags, ...cacheFlags(l.stateDir, l.cacheDir)]);
    try {
      const def = loadEnv(chain.envDir, name);
      const cached = existsSync(envRoot(l.cacheDir, def.source.sha256));
      const changed = cached ? (await verifyEntry(await readEntry(l.cacheDir, def.source.sha256), depth)).problems : [];
      return { name, def, error: undefined, cached, sourceExists: def.source.kind === 'file' ? existsSync(def.source.location) : undefined, changed, checkedBy: depth, repair };
    } catch (err) {
      if (!(err instanceof LeapfrogError)) throw err;
      return { name, def: undefined, error: [err.message, ...err.details].join(' '), cached: false, sourceExists: undefined, changed: [], checkedBy: depth, repair };
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
