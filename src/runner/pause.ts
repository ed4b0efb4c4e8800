/**
 * LEAPFROG_PAUSE_AT: a debugging aid that stops leapfrog (SIGSTOP) at a named
 * point of a run, so a person or a test can look at the ledger and the
 * databases right there, kill it there, or let it go on (SIGCONT). It is how
 * the crash tests reach each point without any test-only branch.
 *
 *   LEAPFROG_PAUSE_AT=step-child@liberty/compute/1[,checkpoint@kilo/image]
 *
 * Points:
 *   step-start   before a step's `started` row is written
 *   step-child   the step's child is running (its pid is in the ledger)
 *   step-end     the child has exited, its end not yet written
 *   data-batch   between two batches of a data step
 *   checkpoint   a hop's steps are done, its checkpoint not yet written
 *                (the subject is `release/project`)
 *   snapshot     the snapshot files are written, their ledger rows not yet
 *                (the subject is the step the snapshot comes before)
 * Without `@subject` a point pauses every time it is reached.
 */
export type PausePoint = 'step-start' | 'step-child' | 'step-end' | 'data-batch' | 'checkpoint' | 'snapshot';

const wanted: readonly { point: string; subject: string | undefined }[] = (process.env.LEAPFROG_PAUSE_AT ?? '')
  .split(',')
  .map((s) => s.trim())
  .filter((s) => s !== '')
  .map((s) => {
    const [point, subject] = s.split('@');
    return { point: point!, subject };
  });

export function pauseAt(point: PausePoint, subject: string): void {
  if (!wanted.some((w) => w.point === point && (w.subject === undefined || w.subject === subject))) return;
  process.stderr.write(`leapfrog: paused at ${point} ${subject} (pid ${process.pid}); kill -CONT ${process.pid} goes on\n`);
  process.kill(process.pid, 'SIGSTOP');
}
