import type { Chain } from '../chain/types.js';
import { LeapfrogError } from '../errors.js';
import type { TargetSession } from '../database/session.js';

/**
 * The offline guard: an offline upgrade with the services still connected
 * is how rows get lost (a nova-conductor writing while its schema moves).
 * Before `run` or `rollback` reads anything, the server's process list must
 * show no other session on the chain's databases, unless --force. The list
 * names each one (id, user, client host, database, command and for how long)
 * so the operator knows which service to stop.
 */
export async function offlineGuard(session: TargetSession, chain: Chain, force: boolean, warn: (text: string) => void): Promise<void> {
  const names = Object.values(chain.projects).flatMap((p) => Object.values(p.databases));
  const { visible, sessions } = await session.clientSessions(names);
  const lines = sessions.map((s) => `session ${s.id}: user ${s.user} from ${s.host} on ${s.db}, ${s.command}${s.state ? ` (${s.state})` : ''} for ${s.time} s`);
  if (!visible) {
    const msg = `cannot tell whether services are still connected: this user lacks the PROCESS privilege, so the server shows it only its own sessions`;
    if (!force) throw new LeapfrogError('refused', `${msg}. Grant it (GRANT PROCESS ON *.* TO …), or pass --force if you know the services are stopped.`);
    warn(`Warning: ${msg}; going on because of --force.`);
  }
  if (sessions.length === 0) return;
  if (!force) {
    throw new LeapfrogError(
      'refused',
      `${sessions.length} other client session${sessions.length === 1 ? ' is' : 's are'} connected to the chain's databases: are the services still running? Stop them and run again, or pass --force if these sessions are known to be harmless. Nothing was run.`,
      { details: lines },
    );
  }
  warn([`Warning: going on with ${sessions.length} other session(s) connected to the chain's databases, because of --force:`, ...lines.map((l) => `  ${l}`)].join('\n'));
}
