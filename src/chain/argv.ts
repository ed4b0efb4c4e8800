import type { DatabaseAddress } from '../database/url.js';
import type { Plan, PlannedStep } from './plan.js';
import { renderArgv } from './template.js';
import type { Chain } from './types.js';

/**
 * A plan's steps with their argv rendered, as `run` will execute them and
 * `plan` prints them. Next to the planner so that everything that shows a
 * plan (plan, check-migrations, a dry run) renders it the same way without
 * importing the executor. Template errors surface here, before anything runs.
 */

export interface PreparedStep extends PlannedStep {
  argv: readonly string[];
}

/** Where a project's databases and rendered config files are: what its templates may name. */
export interface TemplatePlaces {
  addresses(project: string): Readonly<Record<string, DatabaseAddress>>;
  /** With `cell`, a per-cell step's: the config files rendered for that cell included. */
  configPaths(project: string, cell?: string): Readonly<Record<string, string>>;
  /** A directory that is empty (and read-only) while steps run: `{{ empty_dir }}`. */
  emptyDir: string;
}

export function prepare(chain: Chain, plan: Plan, places: TemplatePlaces): PreparedStep[] {
  return plan.steps.map((p) => ({ ...p, argv: renderArgv(chain, p.step, places.addresses(p.step.project), places.configPaths(p.step.project, p.step.cell), places.emptyDir) }));
}
