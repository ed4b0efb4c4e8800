import { createHash } from 'node:crypto';
import path from 'node:path';
import type { TemplatePlaces } from '../chain/argv.js';
import type { Chain } from '../chain/types.js';
import type { TargetSession } from '../database/session.js';
import { describePlacement, type Placement } from '../database/placement.js';
import { describeTarget, type DatabaseAddress } from '../database/url.js';
import { cacheFlags, commandLine, stateFlags } from '../state-dir.js';

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
  /**
   * The flags a printed hint needs to reach this chain and target again
   * (--chain, --db…, --defaults-file, --envs; never a password), this
   * state (--state-dir unless the default) and cache (--cache-dir unless
   * STATE_DIR/envs): the hint may be pasted into another shell, standing
   * elsewhere (issue 15).
   */
  targetFlags: readonly string[];
  stateFlags: readonly string[];
  cacheFlags: readonly string[];
}

export function targetKey(t: Placement): string {
  return createHash('sha256').update(describePlacement(t)).digest('hex').slice(0, 12);
}

/** `targetFlags`: what the command line gave for the target (core/context.ts), else the placement's default server. */
export function layout(stateDir: string, cacheDir: string | undefined, chain: Chain, target: Placement, targetFlags?: readonly string[]): Layout {
  const state = path.resolve(stateDir);
  return {
    stateDir: state,
    cacheDir: cacheDir ? path.resolve(cacheDir) : path.join(state, 'envs'),
    configDir: path.join(state, 'config', `${chain.name}-${targetKey(target)}`),
    targetFlags: targetFlags ?? ['--chain', chain.file, '--db', describeTarget(target.default)],
    stateFlags: stateFlags(state),
    cacheFlags: cacheFlags(state, cacheDir),
  };
}

export type HintFlags = Pick<Layout, 'targetFlags' | 'stateFlags' | 'cacheFlags'>;

/**
 * A command to paste: `leapfrog WORDS…` with the flags that reach this
 * state, and with `target` this chain, target and cache too (`ledger`
 * takes neither those nor --cache-dir).
 */
export function hint(l: HintFlags, words: readonly string[], target = true): string {
  return commandLine([...words, ...(target ? l.targetFlags : []), ...l.stateFlags, ...(target ? l.cacheFlags : [])]);
}

export function runDir(l: Layout, runId: number): string {
  return path.join(l.stateDir, 'runs', String(runId));
}

/**
 * `{{ empty_dir }}`: beside the rendered configs, so a rootfs step sees it
 * (read-only, as the configs); `.empty` is no project's name (names start
 * with a letter or digit). Real tools read more than the file they are
 * given: oslo.config also reads every file of the default config
 * directories (/etc/nova/nova.conf.d…) unless --config-dir names another,
 * so a step that must not read the host's config points it here.
 */
export function emptyDir(l: Pick<Layout, 'configDir'>): string {
  return path.join(l.configDir, '.empty');
}

/**
 * Where a project's config files are rendered. A config file that names
 * `cell` is rendered once per cell, into `<project>@<cell>/` (no name has an
 * `@`, so it is never another project's directory), and is there only for
 * the cell's steps: without `cell`, those files are left out.
 */
export function configPaths(l: Pick<Layout, 'configDir'>, chain: Chain, project: string, cell?: string): Record<string, string> {
  const def = chain.projects[project]!;
  const out: Record<string, string> = {};
  for (const file of Object.keys(def.config)) {
    if (!def.cellConfig?.includes(file)) out[file] = path.join(l.configDir, project, file);
    else if (cell !== undefined) out[file] = path.join(l.configDir, `${project}@${cell}`, file);
  }
  return out;
}

/** Every config file of a project to render: the plain ones once, each one naming `cell` once per cell. */
export function configRenderings(l: Pick<Layout, 'configDir'>, chain: Chain, project: string): { file: string; dest: string; cell: string | undefined }[] {
  const def = chain.projects[project]!;
  const out = Object.entries(configPaths(l, chain, project)).map(([file, dest]) => ({ file, dest, cell: undefined as string | undefined }));
  for (const cell of def.cells ?? []) {
    for (const [file, dest] of Object.entries(configPaths(l, chain, project, cell))) if (def.cellConfig?.includes(file)) out.push({ file, dest, cell });
  }
  return out;
}

export function projectAddresses(chain: Chain, session: Pick<TargetSession, 'address'>, project: string): Record<string, DatabaseAddress> {
  const out: Record<string, DatabaseAddress> = {};
  for (const [logical, name] of Object.entries(chain.projects[project]!.databases)) out[logical] = session.address(name);
  return out;
}

/** What a chain's templates may name, for this state directory and target. */
export function templatePlaces(l: Layout, chain: Chain, session: Pick<TargetSession, 'address'>): TemplatePlaces {
  return { addresses: (project) => projectAddresses(chain, session, project), configPaths: (project, cell) => configPaths(l, chain, project, cell), emptyDir: emptyDir(l) };
}
