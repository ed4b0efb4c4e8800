import path from 'node:path';
import { rm } from 'node:fs/promises';
import { buildCommand } from './envs-build.js';
import { gcDecisions, listCache, provisionAll, removeEntry, staleTemps, usage, verifyEntry } from '../envs/cache.js';
import { withStopSignals } from '../core/signals.js';
import { LeapfrogError } from '../errors.js';
import { downloadRenderer, formatBytes } from '../report/progress.js';
import { table } from '../report/render.js';
import { fetchArgs, loadChains, provisionOptions, type ChainSet, type FetchArgs } from './context.js';
import { num, optionalNum, type Args } from './options.js';
import type { Io } from './io.js';
import { readEnvInfo } from '../envs/info.js';
import { describePackages } from './envs-build.js';

/**
 * `leapfrog envs list|verify|gc|provision`: fill and check the env cache
 * ahead of an offline window.
 */

export interface EnvsArgs extends FetchArgs {
  action: 'list' | 'verify' | 'gc' | 'provision' | 'build';
  debian?: string | undefined;
  packages?: string | undefined;
  mirror?: string | undefined;
  components?: string | undefined;
  variant?: string | undefined;
  dir?: string | undefined;
  name?: string | undefined;
  out?: string | undefined;
  chain: string[] | undefined;
  chains: string[] | undefined;
  envs: string | undefined;
  'state-dir': string;
  'cache-dir': string | undefined;
  format: 'text' | 'json';
  parallel: number;
  'older-than': number | undefined;
  'dry-run': boolean;
}

/**
 * SIGINT and SIGTERM abort the work in `cb` (a download, an unpacking)
 * instead of killing the process in the middle of a write: the aborted
 * provisioning removes its spool and temporary tree, and the command exits
 * 130 with nothing left behind.
 */
/** The one stop policy (core/signals.ts) for provisioning: a signal removes what was half-downloaded or half-unpacked. */
export function withInterrupt<T>(io: Io, cb: (signal: AbortSignal) => Promise<T>): Promise<T> {
  return withStopSignals((text) => io.err(`\n${text}; removing what was half-downloaded or half-unpacked…`), cb);
}

/** A redirect followed while downloading an env, said on stderr (never with credentials). */
export const reportRedirect = (io: Io) => (env: string, from: string, to: string, status: number) => io.err(`env ${env}: ${from} redirected (HTTP ${status}) to ${to}`);

export function cacheDirOf(args: { 'state-dir': string; 'cache-dir': string | undefined }): string {
  return args['cache-dir'] ? path.resolve(args['cache-dir']) : path.join(path.resolve(args['state-dir']), 'envs');
}

function chainsOf(args: EnvsArgs): ChainSet[] | undefined {
  const files = args.chain ?? [];
  const dirs = args.chains ?? [];
  if (files.length === 0 && dirs.length === 0) return undefined;
  return loadChains(files, dirs, args.envs);
}

export async function envsCommand(args: EnvsArgs, io: Io): Promise<void> {
  if (args.action === 'build') return buildCommand(args, io);
  const cacheDir = cacheDirOf(args);
  const chains = chainsOf(args);
  const used = chains ? usage(chains.map((c) => ({ chain: c.chain.name, envs: c.envs }))) : undefined;
  const json = args.format === 'json';

  switch (args.action) {
    case 'list': {
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
      return;
    }
    case 'verify': {
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
      return;
    }
    case 'gc': {
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
      return;
    }
    case 'provision': {
      if (!chains) throw new LeapfrogError('input', 'envs provision needs --chain FILE (or --chains DIR): the chains whose envs to fetch');
      if (!Number.isInteger(args.parallel) || args.parallel < 1) throw new LeapfrogError('input', `--parallel ${args.parallel}: must be a whole number, 1 or more`);
      const envs = chains.flatMap((c) => [...c.envs.values()]);
      const render = downloadRenderer(io.tty && !json, process.stderr, io.err);
      const started = Date.now();
      const options = {
        ...provisionOptions(args, chains.map((c) => c.chain.file)),
        onProgress: (env: string, p: { bytes: number; total: number | undefined; attempt: number }) => render.progress(env, p.bytes, p.total, p.attempt),
        onRedirect: reportRedirect(io),
      };
      let result;
      try {
        result = await withInterrupt(io, (signal) =>
          provisionAll(envs, cacheDir, args.parallel, { ...options, signal }, (env, r) => {
            if (json) return;
            render.done(env.name, r instanceof LeapfrogError ? `env ${env.name}: FAILED` : `env ${env.name}: ${r.cached ? 'already cached' : 'unpacked'} in ${r.root}`);
          }),
        );
      } finally {
        render.stop();
      }
      if (json) {
        io.out(JSON.stringify({ format: 'leapfrog.envs.provision/v1', cache: cacheDir, envs: result.done.map((p) => ({ env: p.def.name, sha256: p.sha256, root: p.root, cached: p.cached })), failed: result.failed.map((e) => e.message) }, null, 2));
      } else if (result.failed.length === 0) {
        io.out(`${result.done.length} env${result.done.length === 1 ? '' : 's'} ready in ${cacheDir} (${((Date.now() - started) / 1000).toFixed(1)} s).`);
      }
      if (result.failed.length === 1) throw result.failed[0]!;
      if (result.failed.length > 1) {
        const kind = result.failed.some((f) => f.kind === 'interrupted') ? 'interrupted' : result.failed.every((f) => f.kind === 'input') ? 'input' : 'unexpected';
        throw new LeapfrogError(kind, `${result.failed.length} envs could not be provisioned:`, { details: result.failed.map((f) => f.message) });
      }
      return;
    }
  }
}

/** The command line's flags, checked, as envsCommand takes them. */
export function handler(args: Args, io: Io): Promise<void> {
  return envsCommand(
    {
      ...(args as unknown as EnvsArgs),
      ...fetchArgs(args),
      parallel: num(args, 'parallel', { whole: true, min: 1 }),
      'older-than': optionalNum(args, 'older-than', { min: 0, what: 'of days' }),
    },
    io,
  );
}
