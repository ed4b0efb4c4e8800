/**
 * One builder for every child's environment: toolchain steps, the database
 * clients (dump, restore), the scratch server, the namespace probe. Nothing
 * is inherited from leapfrog's own environment but the locale and the time
 * zone (and, for the database clients and servers, PATH, so the operator's
 * mariadb-dump is found): leapfrog's environment may hold
 * LEAPFROG_DB_PASSWORD, proxies or cloud credentials that no child needs.
 * graphile-migrate builds its children's environment the same way
 * (src/actions.ts).
 */

/** Variables a child may inherit: locale and time zone only. */
export const INHERITED_VARS = ['LANG', 'LC_ALL', 'LC_CTYPE', 'TZ'] as const;
export const SYSTEM_PATH = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];

export interface ChildEnvOptions {
  /** Keep the parent's PATH (database clients and servers); otherwise PATH is `path` then the system's. */
  keepPath?: boolean;
  /** Directories before the system's on PATH (a toolchain's bin). */
  path?: readonly string[];
  /** Variables to set, after the inherited ones. */
  vars?: Readonly<Record<string, string>>;
}

export function clientEnvironment(o: ChildEnvOptions = {}, parent: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const env: Record<string, string> = {};
  for (const k of INHERITED_VARS) {
    const v = parent[k];
    if (v !== undefined) env[k] = v;
  }
  env.PATH = o.keepPath && parent.PATH ? parent.PATH : [...(o.path ?? []), ...SYSTEM_PATH].join(':');
  for (const [k, v] of Object.entries(o.vars ?? {})) env[k] = v;
  return env;
}
