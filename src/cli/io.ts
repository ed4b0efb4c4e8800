import { maskKnown } from '../report/secrets.js';

/** Where commands write: results to stdout, progress and diagnostics to stderr. */
export interface Io {
  out(text: string): void;
  err(text: string): void;
  /** stderr is a terminal: progress bars instead of lines. */
  tty: boolean;
  /** To stderr as given, no newline added: a terminal renderer's cursor movements. */
  errRaw(text: string): void;
  /** stderr's width in columns (80 when it is not a terminal). */
  columns(): number;
}

const closed = new WeakSet<NodeJS.WriteStream>();
const GONE = new Set(['EPIPE', 'EIO', 'ECONNRESET', 'ERR_STREAM_DESTROYED']);

/**
 * `leapfrog run … | head` and an ssh session that drops while `run` works
 * must not kill a migration half-way: once a reader is gone (EPIPE; EIO on
 * a hung-up terminal), writes to that stream are dropped quietly and the
 * work goes on to its next safe point, recording everything in the ledger,
 * which is where the truth lives. Other write errors are still errors.
 */
export function quietBrokenPipes(): void {
  for (const s of [process.stdout, process.stderr]) {
    if (s.listenerCount('error') > 0) continue;
    s.on('error', (err: NodeJS.ErrnoException) => {
      if (!GONE.has(err.code ?? '')) throw err;
      closed.add(s);
    });
  }
}

function writeTo(s: NodeJS.WriteStream, raw: string, newline = true): void {
  if (closed.has(s) || s.destroyed) return;
  // Every password leapfrog has learnt is masked in every form it may take (src/report/secrets.ts), whatever printed it.
  const text = maskKnown(raw);
  try {
    s.write(text.endsWith('\n') || !newline ? text : text + '\n');
  } catch (err) {
    if (!GONE.has((err as NodeJS.ErrnoException).code ?? '')) throw err;
    closed.add(s);
  }
}

export const processIo: Io = {
  out: (t) => writeTo(process.stdout, t),
  err: (t) => writeTo(process.stderr, t),
  tty: Boolean(process.stderr.isTTY),
  errRaw: (t) => writeTo(process.stderr, t, false),
  columns: () => process.stderr.columns || 80,
};
