import stripAnsiCodes from 'strip-ansi';

/**
 * What of a step's output is kept beside its failure (in the ledger, the
 * error message and reports): real tools end with the lines that matter
 * least. nova-manage prints its ERROR line and then 20 to 65 lines of the
 * SQL that failed; zed's oslo.log ends every line with an ANSI reset
 * (ESC[00m) even without a terminal; a Python traceback is the story of the
 * failure. So: ANSI escapes removed, the blocks that start at an ERROR,
 * CRITICAL or Traceback line (up to a bound each), and the last lines.
 */

/**
 * Colours, cursor moves, titles (ECMA-48 CSI, OSC, control strings, two-byte
 * escapes), removed with strip-ansi: its ansi-regex is what the terminal
 * tooling of the npm ecosystem (chalk, yargs's cliui) relies on.
 */
export function stripAnsi(text: string): string {
  return stripAnsiCodes(text);
}

const ERROR_LINE = /(^|\s)(ERROR|CRITICAL|FATAL)(\s|:|$)|^Traceback \(most recent call last\)|^\S*(Error|Exception): /;

export interface TailOptions {
  /** The last lines always kept. */
  last: number;
  /** At most this many lines from each error block (the error line and what follows it). */
  perError: number;
  /** At most this many error blocks, the last ones. */
  errors: number;
}

export const DEFAULT_TAIL: TailOptions = { last: 20, perError: 12, errors: 3 };

/**
 * The lines to keep, in their order, with `…` where lines were left out.
 * Pure: `lines` is the whole output (or a window of it that still holds
 * the error lines).
 */
export function failureTail(lines: readonly string[], o: TailOptions = DEFAULT_TAIL): string[] {
  const clean = lines.map(stripAnsi);
  const keep = new Set<number>();
  const starts = clean.flatMap((l, i) => (ERROR_LINE.test(l) ? [i] : []));
  // Consecutive error lines belong to one block: keep the start of each block.
  const blocks = starts.filter((i, k) => k === 0 || starts[k - 1] !== i - 1).slice(-o.errors);
  for (const b of blocks) for (let i = b; i < Math.min(clean.length, b + o.perError); i++) keep.add(i);
  for (let i = Math.max(0, clean.length - o.last); i < clean.length; i++) keep.add(i);
  const out: string[] = [];
  let prev = -1;
  for (const i of [...keep].sort((a, b) => a - b)) {
    if (prev >= 0 && i > prev + 1) out.push('…');
    else if (prev < 0 && i > 0) out.push('…');
    out.push(clean[i]!);
    prev = i;
  }
  return out;
}
