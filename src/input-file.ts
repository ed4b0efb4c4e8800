import { readFileSync, statSync } from 'node:fs';
import { inputError, LeapfrogError } from './errors.js';

/**
 * Reading a small file given on the command line (a chain, an env file, an
 * option file). Checked before reading: a directory, a FIFO or /dev/zero
 * would fail late or never end, and a file far larger than any real one
 * would only cost memory and time. `shown` is how the message names it.
 */
export function readSmallFile(file: string, shown: string, what: string, maxBytes: number): Buffer {
  try {
    const st = statSync(file);
    if (st.isDirectory()) throw inputError(`${shown}: is a directory; give the ${what} itself (a file)`);
    if (!st.isFile()) throw inputError(`${shown}: is not a regular file (a device, FIFO or socket); give the ${what} itself`);
    if (st.size > maxBytes) throw inputError(`${shown}: is ${(st.size / 1024 / 1024).toFixed(1)} MiB; a ${what} is a few KB (over ${maxBytes / 1024 / 1024} MiB is refused)`);
    return readFileSync(file);
  } catch (err) {
    if (err instanceof LeapfrogError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    throw inputError(`${shown}: cannot read this ${what} (${code === 'ENOENT' ? 'no such file' : code ?? String(err)})`);
  }
}
