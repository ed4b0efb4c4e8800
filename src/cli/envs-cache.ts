import path from 'node:path';
import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { gcDecisions, listCache, readEntry, removeEntry, staleTemps, verifyEntry } from '../envs/cache.js';
import { provisionEnv } from '../envs/store.js';
import { cacheFlags, commandLine, stateFlags } from '../state-dir.js';
import { provisionOptions } from './context.js';
import { reportRedirect, withInterrupt } from './envs.js';
import { readEnvInfo } from '../envs/info.js';
import { LeapfrogError } from '../errors.js';
import { formatBytes } from '../report/progress.js';
import { table } from '../report/render.js';
import type { EnvsContext } from './envs.js';
import { describePackages } from './envs-build.js';
import type { Io } from './io.js';

/** `leapfrog envs list|verify|gc|repair`: what the cache holds, whether it is intact, what can go, and putting a changed env right. */

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

export async function verifyEnvs(ctx: EnvsContext, io: Io): Promise<void> {
  const { cacheDir, used, json } = ctx;
  let entries = await listCache(cacheDir);
  if (used) entries = entries.filter((e) => used.has(e.sha256));
  const results = [];
  for (const e of entries) results.push(await verifyEntry(e));
  const bad = results.filter((r) => !r.ok);
  if (json) io.out(JSON.stringify({ format: 'leapfrog.envs.verify/v1', cache: cacheDir, results: results.map((r) => ({ sha256: r.entry.sha256, env: r.entry.env ?? null, ok: r.ok, problems: r.problems })) }, null, 2));
  else for (const r of results) io.out(`${r.ok ? 'ok' : 'TAMPERED'}  ${r.entry.sha256.slice(0, 12)} ${r.entry.env ?? '?'}${r.ok ? '' : r.problems.map((p) => `\n    ${p}`).join('')}`);
  if (bad.length > 0) {
    const names = bad.map((b) => b.entry.env ?? b.entry.sha256.slice(0, 12));
    throw new LeapfrogError(
      'refused',
      `${bad.length} of ${results.length} cached envs changed since they were unpacked: ${names.join(', ')}. Unpack each again from its tarball (${names.map((n) => `\`${repairHint(ctx, n)}\``).join(', ')}), or remove them (\`${commandLine(['envs', 'gc', ...stateFlags(ctx.args['state-dir']), ...cacheFlags(ctx.args['state-dir'], ctx.args['cache-dir'])])}\`) and provision again`,
    );
  }
  if (!json && results.length === 0) io.out(`No cached envs to verify in ${cacheDir}.`);
}

export async function gcEnvs({ args, cacheDir, used, json }: EnvsContext, io: Io): Promise<void> {
  if (args['older-than'] !== undefined && !(args['older-than'] >= 0)) throw new LeapfrogError('input', `--older-than ${args['older-than']}: must be a number of days, 0 or more`);
  const entries = await listCache(cacheDir);
  // A changed entry goes whatever uses it (cache.ts, gcDecisions): the cheap check finds it, as a run's would.
  const changed = new Map<string, string[]>();
  for (const e of entries) {
    const r = await verifyEntry(e, 'stat');
    if (!r.ok) changed.set(e.sha256, r.problems);
  }
  const decisions = gcDecisions(entries, used, args['older-than'], Date.now(), changed);
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

/** The command that repairs env `name`, with the flags that found it. */
function repairHint({ args }: EnvsContext, name: string): string {
  const chains = [...(args.chain ?? []).flatMap((c) => ['--chain', path.resolve(c)]), ...(args.chains ?? []).flatMap((c) => ['--chains', path.resolve(c)])];
  return commandLine(['envs', 'repair', name, ...(chains.length > 0 ? chains : ['--chain', 'CHAIN']), ...(args.envs ? ['--envs', path.resolve(args.envs)] : []), ...stateFlags(args['state-dir']), ...cacheFlags(args['state-dir'], args['cache-dir'])]);
}

/**
 * `envs repair NAME --chain C`: unpack env NAME of the given chains again
 * from its tarball (its env file's source, fetched or read and verified by
 * sha256 as at first), in place of a tree that changed since it was
 * unpacked. An intact tree (every file hashed) is left alone.
 */
export async function repairEnvs(ctx: EnvsContext, io: Io): Promise<void> {
  const { args, cacheDir, chains, json } = ctx;
  const name = args.env;
  if (!name) throw new LeapfrogError('input', 'envs repair needs the name of the env to repair (as `leapfrog envs verify` names it), and --chain FILE (or --chains DIR): its env file says where its tarball is');
  if (!chains) throw new LeapfrogError('input', `envs repair ${name} needs --chain FILE (or --chains DIR): the chain's env file says where the tarball of ${name} is`);
  const defs = [...new Map(chains.flatMap((c) => [...c.envs.values()]).filter((e) => e.name === name || e.source.sha256.startsWith(name)).map((e) => [e.source.sha256, e])).values()];
  if (defs.length === 0) {
    const known = [...new Set(chains.flatMap((c) => [...c.envs.keys()]))].sort();
    throw new LeapfrogError('input', `envs repair ${name}: no env of that name in ${chains.map((c) => c.chain.file).join(', ')}; its envs are ${known.join(', ') || 'none'}`);
  }
  if (defs.length > 1) throw new LeapfrogError('input', `envs repair ${name}: names ${defs.length} tarballs (${defs.map((d) => `${d.name} ${d.source.sha256.slice(0, 12)}`).join(', ')}); give the env's name or more of its sha256`);
  const def = defs[0]!;
  const root = path.join(cacheDir, def.source.sha256);
  const before = existsSync(root) ? await verifyEntry(await readEntry(cacheDir, def.source.sha256), 'hash') : undefined;
  if (before?.ok) {
    if (json) io.out(JSON.stringify({ format: 'leapfrog.envs.repair/v1', cache: cacheDir, env: def.name, sha256: def.source.sha256, repaired: false, changed: [] }, null, 2));
    else io.out(`env ${def.name} (${def.source.sha256.slice(0, 12)}) in ${cacheDir} is intact (every file hashed): nothing to repair.`);
    return;
  }
  const options = provisionOptions(args, [...(args.chain ?? [])]);
  await withInterrupt(io, (signal) => provisionEnv(def, cacheDir, { ...options, onRedirect: reportRedirect(io), signal }, true));
  const after = await verifyEntry(await readEntry(cacheDir, def.source.sha256), 'hash');
  if (!after.ok) throw new LeapfrogError('unexpected', `env ${def.name}: unpacked again, but ${root} does not match its new manifest; is something writing into the cache?`, { details: after.problems.slice(0, 20) });
  if (json) {
    io.out(JSON.stringify({ format: 'leapfrog.envs.repair/v1', cache: cacheDir, env: def.name, sha256: def.source.sha256, repaired: true, changed: before?.problems ?? [] }, null, 2));
    return;
  }
  const was = before ? `${before.problems.length} change${before.problems.length === 1 ? '' : 's'} undone (${before.problems.slice(0, 3).join('; ')}${before.problems.length > 3 ? '; …' : ''})` : 'it was not in the cache';
  io.out(`env ${def.name} (${def.source.sha256.slice(0, 12)}) unpacked again from its tarball into ${root}: ${was}.`);
}
