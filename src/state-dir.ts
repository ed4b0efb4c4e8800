import { statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { shellQuote } from './report/format.js';

/**
 * Where the state directory (ledger, logs, rendered configs, snapshots, env
 * cache) is, so that it does not depend on where the operator stands: a DBA
 * who resumes a window from another directory, or pastes a hint into
 * another shell, must find the same ledger, or leapfrog would start a new
 * one and unpack every env again.
 *
 * Precedence: --state-dir, then LEAPFROG_STATE_DIR, then `./.leapfrog` when
 * it exists in the working directory (the default before this release; a
 * window begun with it must resume with it: see below), then the default:
 *
 * - as root: /var/lib/leapfrog. FHS 3.0 §5.8 puts "state information that
 *   programs modify while they run, and that pertains to one specific host"
 *   in /var/lib, and systemd's StateDirectory= uses /var/lib/NAME for system
 *   services. It is also the one answer that stays the same however root was
 *   reached: `sudo` (which may keep the caller's HOME), `sudo -i`, cron.
 * - otherwise: $XDG_STATE_HOME/leapfrog, else ~/.local/state/leapfrog. The
 *   XDG Base Directory spec (0.8) made XDG_STATE_HOME the place for state
 *   "that should persist between (application) restarts" such as logs and
 *   history, with ~/.local/state as its default, and says a relative value
 *   must be ignored; systemd's StateDirectory= maps to it for user services.
 *
 * A `./.leapfrog` found with neither flag nor variable is used, and said on
 * stderr with its absolute path and how to keep using it from anywhere:
 * refusing would leave a DBA who started a window with the old default
 * unable to resume it without reading a manual at 3 a.m., and moving on to
 * the new default would silently lose the window's ledger (a new, empty
 * one: every step planned again, no checkpoints for rollback).
 */

export const LEGACY = '.leapfrog';

export interface StateDirChoice {
  /** Absolute. */
  dir: string;
  from: 'flag' | 'env' | 'cwd' | 'default';
  /** What to say on stderr about the choice (the old ./.leapfrog). */
  note?: string | undefined;
}

interface Where {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  uid?: number;
  home?: string;
}

/** The default state directory for this user: /var/lib/leapfrog for root, else the XDG state directory. */
export function defaultStateDir(w: Where = {}): string {
  const env = w.env ?? process.env;
  const uid = w.uid ?? process.getuid?.() ?? -1;
  if (uid === 0) return '/var/lib/leapfrog';
  const xdg = env.XDG_STATE_HOME;
  // XDG: "If an implementation encounters a relative path in any of these variables it should consider the path invalid and ignore it."
  if (xdg && path.isAbsolute(xdg)) return path.join(xdg, 'leapfrog');
  return path.join(w.home ?? os.homedir(), '.local', 'state', 'leapfrog');
}

function isDir(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

/** The state directory a command uses, and why; see the comment at the top. */
export function chooseStateDir(flag: string | undefined, w: Where = {}): StateDirChoice {
  const env = w.env ?? process.env;
  const cwd = w.cwd ?? process.cwd();
  if (flag !== undefined && flag !== '') return { dir: path.resolve(cwd, flag), from: 'flag' };
  const fromEnv = env.LEAPFROG_STATE_DIR;
  if (fromEnv !== undefined && fromEnv !== '') return { dir: path.resolve(cwd, fromEnv), from: 'env' };
  const legacy = path.join(cwd, LEGACY);
  const def = defaultStateDir(w);
  if (isDir(legacy) && legacy !== def) {
    return {
      dir: legacy,
      from: 'cwd',
      note:
        `note: using the state directory ${legacy} (./${LEGACY} in the working directory, the default of earlier releases) because it exists and neither --state-dir nor LEAPFROG_STATE_DIR is given. ` +
        `The default is now ${def}, wherever you stand. To keep using this one from anywhere: --state-dir ${shellQuote([legacy])} or export LEAPFROG_STATE_DIR=${shellQuote([legacy])}; ` +
        `to adopt the default once this window is over, move it there (mkdir -p ${shellQuote([path.dirname(def)])} && mv ${shellQuote([legacy])} ${shellQuote([def])}).`,
    };
  }
  return { dir: def, from: 'default' };
}

/** A command line to paste: `leapfrog` and its words, each quoted as the shell needs (the plan's own quoting). */
export function commandLine(words: readonly string[]): string {
  return `leapfrog ${shellQuote(words)}`;
}

/** --state-dir when the state directory is not the default (a flag, the variable or ./.leapfrog chose it: a pasted command may run in another shell or directory). */
export function stateFlags(stateDir: string): string[] {
  return path.resolve(stateDir) !== defaultStateDir() ? ['--state-dir', path.resolve(stateDir)] : [];
}

/** --cache-dir when the cache is not STATE_DIR/envs. */
export function cacheFlags(stateDir: string, cacheDir: string | undefined): string[] {
  return cacheDir !== undefined && path.resolve(cacheDir) !== path.join(path.resolve(stateDir), 'envs') ? ['--cache-dir', path.resolve(cacheDir)] : [];
}
