import { withTarget } from '../database/session.js';
import { Ledger } from '../ledger/ledger.js';
import type { CoreContext } from './context.js';
import { preflight, type Preflight, type PreflightOptions } from './preflight.js';

/**
 * The pre-flight on its own, for `plan` and `run --dry-run`: no lock (it
 * changes nothing), the ledger read if there is one and never created.
 */
export async function inspect(ctx: CoreContext, o: PreflightOptions): Promise<Preflight> {
  const ledger = Ledger.openForReading(ctx.layout.stateDir);
  try {
    return await withTarget(ctx.target, (session) => preflight({ chain: ctx.chain, layout: ctx.layout, session, ledger }, o));
  } finally {
    ledger?.close();
  }
}
