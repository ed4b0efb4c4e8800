import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { versionToJson } from '../chain/version.js';
import { fingerprint, type SchemaShape } from '../database/fingerprint.js';
import { probeProject, probeVersion } from '../database/probe.js';
import { snapshotDatabase } from '../database/snapshot.js';
import { describePlacement } from '../database/placement.js';
import type { RunContext } from './context.js';
import { pauseAt } from './pause.js';

/**
 * Snapshot `databases` (in parallel) and record each in the ledger with where
 * the ledger stood, so `rollback --to CHECKPOINT` can find it. The session's
 * connections to them are closed first: a SQLite copy wants no other handle.
 */
export async function takeSnapshot(ctx: RunContext, runId: number, runDirectory: string, databases: readonly string[], beforeStep: string): Promise<void> {
  const position = ctx.ledger.position();
  const dir = path.join(runDirectory, 'snapshots', `${String(position.step).padStart(6, '0')}-before-${beforeStep.replace(/\//g, '-')}`);
  const started = performance.now();
  // Each database's version now, recorded with its snapshot: what a rollback to it restores.
  const versions = new Map<string, unknown>();
  for (const p of Object.values(ctx.chain.projects)) {
    for (const [db, name] of Object.entries(p.databases)) if (databases.includes(name)) versions.set(name, versionToJson(await probeVersion(ctx.session, name, p.version[db]!)));
  }
  for (const d of databases) await ctx.session.release(d);
  ctx.emit({ type: 'snapshot-start', beforeStep, databases, dir });
  const taken = await Promise.all(
    databases.map(async (database) => {
      const t0 = performance.now();
      const f = await snapshotDatabase(ctx.session, database, dir, { level: SNAPSHOT_GZIP_LEVEL });
      return { ...f, durationMs: performance.now() - t0 };
    }),
  );
  pauseAt('snapshot', beforeStep);
  for (const f of taken) {
    ctx.ledger.snapshot({ runId, chain: ctx.chain.name, target: describePlacement(ctx.target), database: f.database, beforeStep, position, file: f.file, sha256: f.sha256, bytes: f.bytes, durationMs: f.durationMs, version: versions.get(f.database) ?? null });
  }
  ctx.emit({ type: 'snapshot', beforeStep, databases: taken, durationMs: performance.now() - started });
}

/** gzip level of snapshots: 1 keeps a dump's throughput close to the server's (bench/snapshot.ts); dumps of SQL text still shrink several-fold. */
export const SNAPSHOT_GZIP_LEVEL = 1;

export async function checkpoint(ctx: RunContext, runId: number, project: string, release: string): Promise<void> {
  const def = ctx.chain.projects[project]!;
  const versions = await probeProject(ctx.session, def);
  const fingerprints: Record<string, string | null> = {};
  const shapes: Record<string, SchemaShape | null> = {};
  for (const [db, name] of Object.entries(def.databases)) {
    const f = await fingerprint(ctx.session, name);
    fingerprints[db] = f?.sha256 ?? null;
    shapes[db] = f?.shape ?? null;
  }
  const plain = Object.fromEntries(Object.entries(versions).map(([db, v]) => [db, versionToJson(v)]));
  pauseAt('checkpoint', `${release}/${project}`);
  ctx.ledger.checkpoint({ runId, project, release, versions: plain, fingerprints, shapes });
  ctx.emit({ type: 'checkpoint', project, release, versions });
}

