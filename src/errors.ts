/**
 * The one domain error. `kind` decides the exit code (see src/cli/main.ts and
 * the README's exit-code table); the message says what is wrong, where, and
 * what to do next. `cause` keeps the original error for --debug output.
 */
export type ErrorKind =
  | 'input'        // a chain, env, flag or URL is wrong: fix the file or the command line
  | 'refused'      // the target is in a state the chain cannot move from
  | 'step-failed'  // a step's child failed, or its result did not verify
  | 'locked'       // another run holds the target: wait, or --wait-lock
  | 'interrupted'  // SIGINT/SIGTERM stopped the run at a safe point
  | 'unexpected';  // a bug or an environment failure: keep the log tail

export class LeapfrogError extends Error {
  readonly kind: ErrorKind;
  /** Extra lines printed under the message (a log tail, a list of problems). */
  readonly details: readonly string[];

  constructor(kind: ErrorKind, message: string, options: { cause?: unknown; details?: readonly string[] } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'LeapfrogError';
    this.kind = kind;
    this.details = options.details ?? [];
  }
}

export const inputError = (message: string, details?: readonly string[]) =>
  new LeapfrogError('input', message, { details });
