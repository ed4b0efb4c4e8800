import { closeSync, constants, existsSync, fstatSync, ftruncateSync, openSync, readSync, unlinkSync, writeSync } from 'node:fs';
import { StringDecoder } from 'node:string_decoder';
import { knownSecrets, streamMasker } from '../report/secrets.js';

/**
 * A step's output, written by the step itself. Its stdout and stderr are one
 * file the child holds open (`<log>.out`), not a pipe to leapfrog: a pipe
 * dies with leapfrog, and a tool that writes to it then gets SIGPIPE in the
 * middle of a migration, which turns "leapfrog was killed" into "the
 * migration was killed between two statements". With a file, a step whose
 * leapfrog was killed goes on to its end, and its output with it.
 *
 * That raw file holds what the tool printed, secrets included (a tool may
 * echo its connection URL), so it lives only as long as the step: private
 * (0600) beside the log, copied masked into the log as it grows, removed when
 * the step ends, or, when leapfrog died first, by the next run, which copies
 * the rest (`recoverOrphanOutput`).
 */

const rawOf = (logFile: string) => `${logFile}.out`;
/** The raw file's first line: where in the log this attempt's output starts (a data step's batches share one log). */
const MARK = 'leapfrog raw step output; log offset ';

export interface OutputFollower {
  /** The descriptor to give the child as stdout and stderr. */
  fd: number;
  /** Copy what the child wrote since the last call into the log, masked. */
  pump(): void;
  /** The last copy (the child has ended), then the raw file is removed. */
  close(): void;
}

/**
 * Open `<log>.out` for a child to write to, and follow it: `pump` copies what
 * arrived, masked with `secrets` (a secret split over two writes included),
 * through `emit`. `logSize` is the log's size before this attempt's output.
 */
export function followOutput(logFile: string, logSize: number, secrets: readonly string[], emit: (text: string) => void): OutputFollower {
  const raw = rawOf(logFile);
  // Appending, so the child's two descriptors (stdout, stderr) never overwrite each other; read here by position.
  const fd = openSync(raw, constants.O_RDWR | constants.O_CREAT | constants.O_TRUNC | constants.O_APPEND, 0o600);
  const mark = Buffer.from(`${MARK}${logSize}\n`);
  writeSync(fd, mark);
  let pos = mark.length;
  const masker = streamMasker(secrets);
  // Bytes to text across read boundaries: a multi-byte character split between two reads stays whole.
  const decoder = new StringDecoder('utf8');
  const buf = Buffer.allocUnsafe(64 * 1024);
  const pump = () => {
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, pos);
      if (n === 0) return;
      pos += n;
      const text = masker.push(decoder.write(buf.subarray(0, n)));
      if (text !== '') emit(text);
    }
  };
  return {
    fd,
    pump,
    close() {
      pump();
      const rest = masker.push(decoder.end()) + masker.end();
      if (rest !== '') emit(rest);
      closeSync(fd);
      unlinkSync(raw);
    },
  };
}

/**
 * After leapfrog died inside a step whose child then went on (and has ended
 * now: the next run waits for it first): put everything the child wrote into
 * the log, masked, in place of the part the dead leapfrog had copied, with
 * `note` as the last line. Returns false when there was nothing to recover.
 */
export function recoverOrphanOutput(logFile: string, note: string): boolean {
  const raw = rawOf(logFile);
  if (!existsSync(raw)) return false;
  // Streamed, in the copy's own chunks: an orphan may have written for hours after its leapfrog died.
  const src = openSync(raw, 'r');
  const fd = openSync(logFile, existsSync(logFile) ? 'r+' : 'w', 0o600);
  try {
    const buf = Buffer.allocUnsafe(64 * 1024);
    let n = readSync(src, buf, 0, buf.length, null);
    const head = buf.subarray(0, n).toString('latin1');
    const newline = head.indexOf('\n');
    const offset = head.startsWith(MARK) && newline > 0 ? Number(head.slice(MARK.length, newline)) : NaN;
    // Only ever shorten to where this attempt began: what came before it is other attempts' output.
    if (Number.isInteger(offset) && offset <= fstatSync(fd).size) ftruncateSync(fd, offset);
    let end = fstatSync(fd).size;
    const append = (text: string) => {
      if (text === '') return;
      const out = Buffer.from(text);
      writeSync(fd, out, 0, out.length, end);
      end += out.length;
    };
    const masker = streamMasker(knownSecrets());
    const decoder = new StringDecoder('utf8');
    let last = '\n';
    let chunk = buf.subarray(Number.isInteger(offset) ? newline + 1 : 0, n);
    while (n > 0) {
      const text = masker.push(decoder.write(chunk));
      if (text !== '') last = text.at(-1)!;
      append(text);
      n = readSync(src, buf, 0, buf.length, null);
      chunk = buf.subarray(0, n);
    }
    const rest = masker.push(decoder.end()) + masker.end();
    if (rest !== '') last = rest.at(-1)!;
    append(`${rest}${last === '\n' ? '' : '\n'}# ${new Date().toISOString()} ${note}\n`);
  } finally {
    closeSync(fd);
    closeSync(src);
  }
  unlinkSync(raw);
  return true;
}
