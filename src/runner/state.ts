import type { PlanInputs } from '../chain/plan.js';
import type { Chain } from '../chain/types.js';
import type { Ledger } from '../ledger/ledger.js';
import { probeAll, probeNeeded } from '../database/probe.js';
import type { TargetSession } from '../database/session.js';
import { describeTarget } from '../database/url.js';

/** Read everything the planner needs: probed versions, needed-when counts, the ledger's record. */
export async function readState(chain: Chain, session: TargetSession, ledger: Ledger): Promise<Omit<PlanInputs, 'until'>> {
  const target = describeTarget(session.target);
  const versions = await probeAll(session, chain);
  const neededCounts = await probeNeeded(session, chain);
  const ledgerDone = ledger.succeededSteps(chain.name, target);
  // Steps the last run was in when it stopped (crashed or interrupted): a database may stand inside one of them.
  const inFlight = new Set(ledger.interruptedSteps(chain.name, target).map((s) => s.step_id));
  return { chain, versions, neededCounts, ledgerDone, inFlight };
}
