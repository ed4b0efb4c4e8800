import { projectAddresses } from '../core/layout.js';
import type { TargetSession } from '../database/session.js';
import { renderRewrite } from '../chain/template.js';
import type { Chain } from '../chain/types.js';
import { LeapfrogError } from '../errors.js';

/**
 * A chain's `rehearsal:` rewrites, run on the restored copy before the
 * chain. Real tools keep connection URLs inside their databases: nova
 * stores every cell's `database_connection` and `transport_url` in
 * nova_api.cell_mappings (nova/objects/cell_mapping.py), and `nova-manage
 * db sync` migrates each cell it finds there. A copy restored from
 * production still names production's servers, so a rehearsal's steps would
 * migrate them. On a scratch server or SQLite copies the steps have no
 * network anyway (rehearse.ts); on `--server` they have, and the rewrite is
 * what keeps them on the copy. Each rewrite is rendered with the copy's
 * addresses, the same ones the steps' templates get.
 *
 * This module is the only caller of `TargetSession.rewrite`, and rehearse.ts
 * its only caller: `run` never writes a project database itself.
 */

export interface RewriteDone {
  project: string;
  database: string;
  /** Rows the statement changed. */
  changed: number;
}

export async function applyRewrites(chain: Chain, session: TargetSession, say: (line: string) => void): Promise<RewriteDone[]> {
  const done: RewriteDone[] = [];
  for (const [pname, project] of Object.entries(chain.projects)) {
    const addresses = projectAddresses(chain, session, pname);
    for (const [i, rw] of (project.rehearsal ?? []).entries()) {
      const sql = renderRewrite(chain, project, i, addresses);
      const name = project.databases[rw.database]!;
      let changed: number;
      try {
        changed = await session.rewrite(name, sql);
      } catch (err) {
        throw new LeapfrogError('input', `${chain.file}: projects.${pname}.rehearsal[${i}] failed on the copy of ${pname}.${rw.database}: ${(err as Error).message}; fix the statement (it runs before the chain, on the copy only)`, { cause: err });
      }
      say(`rehearsal rewrite ${pname}.${rw.database} [${i}]: ${changed} row(s) changed${rw.why ? ` (${rw.why})` : ''}`);
      done.push({ project: pname, database: rw.database, changed });
    }
  }
  return done;
}
