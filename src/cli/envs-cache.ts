import path from 'node:path';
import { rm } from 'node:fs/promises';
import { gcDecisions, listCache, removeEntry, staleTemps, verifyEntry } from '../envs/cache.js';
import { readEnvInfo } from '../envs/info.js';
import { LeapfrogError } from '../errors.js';
import { formatBytes } from '../report/progress.js';
import { table } from '../report/render.js';
import type { EnvsContext } from './envs.js';
import { describePackages } from './envs-build.js';
import type { Io } from './io.js';

/** `leapfrog envs list|verify|gc`: what the cache holds, whether it is intact, and what can go. */

export async function listEnvs({ cacheDir, chains, used, json }: EnvsContext, io: Io): Promise<void> {
  const entries = await listCache(cacheDir);
  const rows = [];
  for (const e of entries) {
    const info = await readEnvInfo(e.root);
    rows.push({ sha256: e.sha256, env: e.env ?? null, bytes: e.bytes ?? null, files: e.files ?? null, unpackedAt: e.unpackedAt ?? null, usedBy: used?.get(e.sha256) ?? [], problem: e.problem ?? null, build: info?.build ?? null, packages: info?.packages ?? null });
  }
  const built = rows.some((r) => r.packages !== null);
  // Envs the given chains need that are not cached: what a window would miss.
  const missing = chains ? chains.flatMap((c) => [...c.envs.values()].filter((e) => !entries.some((x) => x.sha256 === e.source.sha256)).map((e) => ({ chain: c.chain.name, env: e.name, sha256: e.source.sha256 }))) : [];
  if (json) {
    io.out(JSON.stringify({ format: 'leapfrog.envs.list/v1', cache: cacheDir, entries: rows, missing }, null, 2));
    return;
  }
  if (entries.length === 0) io.out(`The env cache ${cacheDir} is empty.`);
  else {
    const t = table(['sha256', 'env', 'size', 'files', 'unpacked', ...(built ? ['packages'] : []), ...(used ? ['used by'] : [])]);
    for (const r of rows) t.push([r.sha256.slice(0, 12), r.env ?? '?', r.bytes === null ? '?' : formatBytes(r.bytes), r.files === null ? '?' : String(r.files), (r.unpackedAt ?? '').slice(0, 19).replace('T', ' '), ...(built ? [describePackages(r.build, r.packages)] : []), ...(used ? [r.usedBy.join('\n') || '-'] : [])]);
    io.out(`${cacheDir}\n${t.toString()}`);
  }
  for (const m of missing) io.out(`not cached: ${m.chain}:${m.env} (${m.sha256.slice(0, 12)})`);
}

export async function verifyEnvs({ cacheDir, used, json }: EnvsContext, io: Io): Promise<void> {
  let entries = await listCache(cacheDir);
  if (used) entries = entries.filter((e) => used.has(e.sha256));
  const results = [];
  for (const e of entries) results.push(await verifyEntry(e));
  const bad = results.filter((r) => !r.ok);
  if (json) io.out(JSON.stringify({ format: 'leapfrog.envs.verify/v1', cache: cacheDir, results: results.map((r) => ({ sha256: r.entry.sha256, env: r.entry.env ?? null, ok: r.ok, problems: r.problems })) }, null, 2));
  else for (const r of results) io.out(`${r.ok ? 'ok' : 'TAMPERED'}  ${r.entry.sha256.slice(0, 12)} ${r.entry.env ?? '?'}${r.ok ? '' : r.problems.map((p) => `\n    ${p}`).join('')}`);
  if (bad.length > 0) {
    throw new LeapfrogError('refused', `${bad.length} of ${results.length} cached envs changed since they were unpacked: ${bad.map((b) => b.entry.env ?? b.entry.sha256.slice(0, 12)).join(', ')}. Remove them (leapfrog envs gc, or delete ${cacheDir}/<sha256>) and provision again`);
  }
  if (!json && results.length === 0) io.out(`No cached envs to verify in ${cacheDir}.`);
}

export async function gcEnvs({ args, cacheDir, used, json }: EnvsContext, io: Io): Promise<void> {
  if (args['older-than'] !== undefined && !(args['older-than'] >= 0)) throw new LeapfrogError('input', `--older-than ${args['older-than']}: must be a number of days, 0 or more`);
  const decisions = gcDecisions(await listCache(cacheDir), used, args['older-than'], Date.now());
  const stale = await staleTemps(cacheDir);
  if (!args['dry-run']) {
    for (const d of decisions) if (d.remove) await removeEntry(cacheDir, d.entry.sha256);
    for (const s of stale) await rm(s, { recursive: true, force: true });
  }
  const freed = decisions.filter((d) => d.remove).reduce((a, d) => a + (d.entry.bytes ?? 0), 0);
  if (json) {
    io.out(JSON.stringify({ format: 'leapfrog.envs.gc/v1', cache: cacheDir, dryRun: args['dry-run'], decisions: decisions.map((d) => ({ sha256: d.entry.sha256, env: d.entry.env ?? null, removed: d.remove && !args['dry-run'], remove: d.remove, why: d.why })), staleTemps: stale }, null, 2));
    return;
  }
  for (const d of decisions) io.out(`${d.remove ? (args['dry-run'] ? 'would remove' : 'removed') : 'kept'}  ${d.entry.sha256.slice(0, 12)} ${d.entry.env ?? '?'}: ${d.why}`);
  if (stale.length > 0) io.out(`${args['dry-run'] ? 'would remove' : 'removed'} ${stale.length} leftover${stale.length === 1 ? '' : 's'} of interrupted provisions in ${path.join(cacheDir, '.tmp')}`);
  io.out(`${args['dry-run'] ? 'Would free' : 'Freed'} ${formatBytes(freed)}.`);
}
