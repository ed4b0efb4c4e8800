import { loadChain, loadChainEnvs } from '../chain/load.js';
import type { Chain, EnvDef } from '../chain/types.js';
import { readOptionFile } from '../database/option-file.js';
import { place, type Placement } from '../database/placement.js';
import path from 'node:path';
import { describeTarget, parseTargetUrl, redactUrl, type Target } from '../database/url.js';
import type { ProvisionOptions } from '../envs/store.js';
import { LeapfrogError } from '../errors.js';
import { layout, type Layout } from './layout.js';

/**
 * What every command of the core works on: the chain and its envs, the
 * target, where state lives, and how envs are provisioned. Built once from
 * the command line's options (src/cli/options.ts) by `loadContext`.
 */
export interface CoreContext {
  chain: Chain;
  envs: ReadonlyMap<string, EnvDef>;
  /** Where the chain's databases are: a default server, and any placed elsewhere. */
  target: Placement;
  layout: Layout;
  provision: ProvisionOptions;
}

export interface TargetSpec {
  /** --db, repeatable: one URL (the default server), and NAME=URL for each of the chain's servers placed elsewhere. */
  db: string | readonly string[];
  /** --defaults-file */
  defaultsFile: string | undefined;
}

export interface ContextSpec extends TargetSpec {
  chain: string;
  envDir: string | undefined;
  stateDir: string;
  cacheDir: string | undefined;
  provision: ProvisionOptions;
}

/** --db, LEAPFROG_DB_PASSWORD and --defaults-file: the default server, and the chain's servers the command line places elsewhere. */
export function serversFrom(spec: TargetSpec): { default: Target; named: Record<string, Target> } {
  const optionFile = spec.defaultsFile === undefined ? {} : readOptionFile(spec.defaultsFile);
  const parse = (url: string) => parseTargetUrl(url, process.env.LEAPFROG_DB_PASSWORD || undefined, optionFile);
  const given = typeof spec.db === 'string' ? [spec.db] : spec.db;
  const named: Record<string, Target> = {};
  const defaults: string[] = [];
  for (const raw of given) {
    // NAME=URL: a name has no colon, so a URL (mysql://…?socket=/x, sqlite:DIR) is never taken for one.
    const m = /^([^:/=]*)=(.*)$/.exec(raw);
    if (m) {
      const [, name, url] = m as unknown as [string, string, string];
      // The whole flag is no URL, so redact the URL part: its password is never shown.
      if (!/^[A-Za-z0-9_.-]+$/.test(name)) throw new LeapfrogError('input', `--db ${name}=${redactUrl(url)}: NAME=URL needs a server name (letters, digits, "_", "." and "-") before "="`);
      if (url === '') throw new LeapfrogError('input', `--db ${name}=: NAME=URL needs the URL of server ${name} after "=" (sqlite:DIR or mysql://user@host:port)`);
      if (name in named) throw new LeapfrogError('input', `--db ${name}=…: server ${name} is given twice; give each server once`);
      named[name] = parse(url);
    } else defaults.push(raw);
  }
  if (defaults.length !== 1) {
    throw new LeapfrogError('input', `--db: ${defaults.length === 0 ? 'no' : `${defaults.length}`} default server${defaults.length > 1 ? 's' : ''} given; give one --db URL for the default server, and --db NAME=URL for each of the chain's servers placed elsewhere`);
  }
  return { default: parse(defaults[0]!), named };
}

/** The one server --db names (commands and flags that take no placement: rehearse --server and --from, fixtures). */
export function targetFrom(spec: TargetSpec): Target {
  const s = serversFrom(spec);
  if (Object.keys(s.named).length > 0) throw new LeapfrogError('input', `${Object.keys(s.named).map((n) => `${n}=…`).join(', ')}: this flag takes one server URL`);
  return s.default;
}

/** Where each of the chain's databases is, from the servers the command line gave. */
export function placementOf(chain: Chain, s: { default: Target; named: Record<string, Target> }): Placement {
  const databaseServers: Record<string, string | undefined> = {};
  const known = new Set<string>();
  for (const p of Object.values(chain.projects)) {
    for (const [logical, name] of Object.entries(p.databases)) {
      const server = p.servers?.[logical];
      databaseServers[name] = server;
      if (server !== undefined) known.add(server);
    }
  }
  return place(s.default, s.named, databaseServers, [...known].sort());
}

/** The flags that name this chain and target again in a hint: absolute paths, each server without its password. */
export function targetFlags(chainFile: string, spec: TargetSpec & { envDir?: string | undefined }, s: { default: Target; named: Record<string, Target> }): string[] {
  const out = ['--chain', path.resolve(chainFile), '--db', describeTarget(s.default)];
  for (const [name, t] of Object.entries(s.named).sort(([a], [b]) => a.localeCompare(b))) out.push('--db', `${name}=${describeTarget(t)}`);
  if (spec.defaultsFile !== undefined) out.push('--defaults-file', path.resolve(spec.defaultsFile));
  if (spec.envDir !== undefined) out.push('--envs', path.resolve(spec.envDir));
  return out;
}

export function loadContext(spec: ContextSpec): CoreContext {
  const chain = loadChain(spec.chain, { envDir: spec.envDir });
  const envs = loadChainEnvs(chain);
  const servers = serversFrom(spec);
  const target = placementOf(chain, servers);
  return { chain, envs, target, layout: layout(spec.stateDir, spec.cacheDir, chain, target, targetFlags(chain.file, spec, servers)), provision: spec.provision };
}
