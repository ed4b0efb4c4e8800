/**
 * A command's own exit code for an outcome that is not an error, such as
 * check-migrations' 1 (warnings) and 2 (failures), after its report is
 * written. Thrown by the handler and turned into the exit code by main.ts,
 * the one exit point (changesets' ExitError, packages/cli/src/index.ts).
 */
export class ExitCode {
  constructor(readonly code: number) {}
}
