/**
 * A region at the bottom of a terminal redrawn whole, in the manner of
 * log-update (sindresorhus/log-update: erase the lines written last time,
 * write them all again): every row is present after every redraw, whatever
 * changed. cli-progress redraws only the rows that changed, and after a line
 * logged above the bars a project's row could stay missing until its next
 * update (about 14 s in a rehearsal). Lines logged above the region stay in
 * the scrollback; the region follows them.
 */

// ECMA-48 / DEC: cursor up N, carriage return, erase to the end of the screen; hide and show the cursor.
const up = (n: number) => (n > 0 ? `\x1b[${n}A\r` : '\r');
const ERASE_DOWN = '\x1b[J';
const HIDE = '\x1b[?25l';
const SHOW = '\x1b[?25h';
// eslint-disable-next-line no-control-regex
const SGR = /\x1b\[[0-9;]*m/g;

export interface Screen {
  /** Replace the region with these lines. */
  draw(lines: readonly string[]): void;
  /** A line above the region, kept in the scrollback. */
  log(text: string): void;
  /** Take the region off the screen (what was logged above it stays). */
  clear(): void;
  /** Leave the last region drawn on screen, show the cursor, write nothing more. */
  close(): void;
}

/** Rows a line takes on a terminal `columns` wide (a line of exactly `columns` characters takes one). */
export function rowsOf(line: string, columns: number): number {
  const width = [...line.replace(SGR, '')].length;
  return Math.max(1, Math.ceil(width / Math.max(1, columns)));
}

/** `write` puts text on the terminal as given (no newline added); `columns` reads its width now (it may change). */
export function screen(write: (text: string) => void, columns: () => number): Screen {
  let rows = 0;
  let last: readonly string[] = [];
  let closed = false;
  const restore = () => write(SHOW);
  const paint = (lines: readonly string[], before = '') => {
    const cols = columns();
    const body = lines.map((l) => `${l}\n`).join('');
    write(`${rows === 0 && last.length === 0 ? HIDE : ''}${up(rows)}${ERASE_DOWN}${before}${body}`);
    rows = lines.reduce((n, l) => n + rowsOf(l, cols), 0);
    last = lines;
  };
  // A cursor left hidden by a process that exits some other way is the terminal's problem for good.
  process.once('exit', restore);
  return {
    draw(lines) {
      if (!closed) paint(lines);
    },
    log(text) {
      if (closed) return write(text.endsWith('\n') ? text : `${text}\n`);
      paint(last, text.endsWith('\n') ? text : `${text}\n`);
    },
    clear() {
      if (!closed) paint([]);
    },
    close() {
      if (closed) return;
      closed = true;
      process.off('exit', restore);
      restore();
    },
  };
}
