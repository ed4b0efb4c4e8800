import { createHash } from 'node:crypto';
import path from 'node:path';
import type { TemplatePlaces } from '../chain/argv.js';
import type { Chain } from '../chain/types.js';
import type { TargetSession } from '../database/session.js';
import { describePlacement, type Placement } from '../database/placement.js';
import type { DatabaseAddress } from '../database/url.js';

/**
 * Where things live in the state directory. Config files sit at a stable
 * place per (chain, target) so the plan can print the exact argv `run` will
 * execute; logs, HOME and TMPDIR are per run.
 *
 *   <state>/ledger.sqlite3
 *   <state>/envs/<sha256>/                 unpacked envs (default cache)
 *   <state>/config/<chain>-<target>/<project>/<file>   rendered configs, 0600
 *   <state>/runs/<run id>/logs/NNN-<step>.log
 *   <state>/runs/<run id>/home, tmp, work
 */
export interface Layout {
  stateDir: string;
  cacheDir: string;
  configDir: string;
}

export function targetKey(t: Placement): string {
  return createHash('sha256').update(describePlacement(t)).digest('hex').slice(0, 12);
}

export function layout(stateDir: string, cacheDir: string | undefined, chain: Chain, target: Placement): Layout {
  const state = path.resolve(stateDir);
  return {
    stateDir: state,
    cacheDir: cacheDir ? path.resolve(cacheDir) : path.join(state, 'envs'),
    configDir: path.join(state, 'config', `${chain.name}-${targetKey(target)}`),
  };
}

export function runDir(l: Layout, runId: number): string {
  return path.join(l.stateDir, 'runs', String(runId));
}

export function configPaths(l: Layout, chain: Chain, project: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const file of Object.keys(chain.projects[project]!.config)) out[file] = path.join(l.configDir, project, file);
  return out;
}

export function projectAddresses(chain: Chain, session: Pick<TargetSession, 'address'>, project: string): Record<string, DatabaseAddress> {
  const out: Record<string, DatabaseAddress> = {};
  for (const [logical, name] of Object.entries(chain.projects[project]!.databases)) out[logical] = session.address(name);
  return out;
}

/** What a chain's templates may name, for this state directory and target. */
export function templatePlaces(l: Layout, chain: Chain, session: Pick<TargetSession, 'address'>): TemplatePlaces {
  return { addresses: (project) => projectAddresses(chain, session, project), configPaths: (project) => configPaths(l, chain, project) };
}
