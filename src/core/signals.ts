/**
 * One policy for stopping, for every long command (run, rehearse, rollback,
 * envs provision, bundle): SIGINT (Ctrl-C), SIGTERM (kill, systemd) and
 * SIGHUP (the ssh session of a 3 a.m. window dropped) all ask the work to
 * stop at its next safe point: the running step gets SIGTERM, then SIGKILL
 * after its grace, and is recorded `interrupted`; the lock is released.
 * Every later signal is caught too and only acknowledged, so a second
 * Ctrl-C cannot kill leapfrog while its step is still rolling back.
 */

import { LeapfrogError } from '../errors.js';

export const STOP_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

let active: AbortSignal | undefined;

/**
 * Run `cb` with an AbortSignal that the stop signals trip. Nested scopes
 * (a rehearsal's restore, then its run) share the outermost one, so one
 * Ctrl-C stops both and is acknowledged once.
 */
export async function withStopSignals<T>(say: (text: string) => void, cb: (signal: AbortSignal) => Promise<T>): Promise<T> {
  if (active) return cb(active);
  const abort = new AbortController();
  active = abort.signal;
  const onSignal = (sig: NodeJS.Signals) => {
    say(abort.signal.aborted ? `${sig}: already stopping; a running step gets SIGKILL if it has not ended 10 s after its SIGTERM` : `${sig}: stopping at a safe point (a running step gets SIGTERM)…`);
    abort.abort(new LeapfrogError('interrupted', `interrupted by ${sig}: stopped at a safe point; run again to resume`));
  };
  for (const s of STOP_SIGNALS) process.on(s, onSignal);
  try {
    return await cb(abort.signal);
  } finally {
    for (const s of STOP_SIGNALS) process.off(s, onSignal);
    active = undefined;
  }
}
