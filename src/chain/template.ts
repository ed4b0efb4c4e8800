import nunjucks from 'nunjucks';
import { LeapfrogError } from '../errors.js';
import type { DatabaseAddress } from '../database/url.js';
import { containsSecret } from '../report/secrets.js';
import type { Chain, ProjectDef, StepDef } from './types.js';

/**
 * Rendering the chain's templates: config files (which may hold the
 * password, and are written mode 0600) and step argv (which must not: argv
 * is visible to every user of the machine through /proc).
 */

const engine = new nunjucks.Environment(null, { autoescape: false, throwOnUndefined: true });

function render(text: string, context: object, where: string): string {
  try {
    return engine.renderString(text, context);
  } catch (err) {
    const msg = (err as Error).message.replace(/^\(unknown path\)\s*/, '').replace(/\s+/g, ' ').trim();
    throw new LeapfrogError('input', `${where}: template ${JSON.stringify(text)} cannot be rendered: ${msg}`, { cause: err });
  }
}

type Addresses = Readonly<Record<string, DatabaseAddress>>;

export function renderConfig(chain: Chain, project: ProjectDef, file: string, addresses: Addresses): string {
  return render(project.config[file]!, { db: addresses, project: project.name }, `${chain.file}: projects.${project.name}.config["${file}"]`);
}

/** A step's argv. `configPaths` maps each of the project's config files to where it is rendered. */
export function renderArgv(chain: Chain, step: StepDef, addresses: Addresses, configPaths: Readonly<Record<string, string>>): string[] {
  // No password in the argv context: commands get it through a config file.
  const db: Record<string, Omit<DatabaseAddress, 'password'>> = {};
  for (const [k, a] of Object.entries(addresses)) {
    const { password: _omitted, ...rest } = a;
    db[k] = rest;
  }
  const context = { db, config: configPaths, project: step.project, release: step.release };
  return step.command.map((arg, i) => {
    const where = `${chain.file}: step ${step.id} (${step.kind}), argument ${i + 1}`;
    const out = render(arg, context, where);
    for (const a of Object.values(addresses)) {
      if (a.password !== '' && containsSecret(out, a.password)) {
        throw new LeapfrogError('input', `${where}: renders the database password (raw or encoded) into the command line, where any user of the machine can read it; reference a config file instead (e.g. {{ config['x.conf'] }})`);
      }
    }
    return out;
  });
}
