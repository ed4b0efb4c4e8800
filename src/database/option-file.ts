import { inputError } from '../errors.js';
import { readSmallFile } from '../input-file.js';

/**
 * A MySQL option file (`--defaults-file`), read as the mysql clients read it
 * (MariaDB KB "Configuring MariaDB with Option Files"; MySQL manual 6.2.2.2
 * "Using Option Files"): `[group]` headers, `name = value` lines, `#` and `;`
 * comment lines, a `#` comment after a value, values in single or double
 * quotes with the escapes \b \t \n \r \\ \s, `-` and `_` alike in names.
 * leapfrog reads the `[client]` group: user, password, host, port, socket.
 * `!include` and `!includedir` are refused rather than silently ignored.
 */
export interface ClientOptions {
  user?: string;
  password?: string;
  host?: string;
  port?: number;
  socket?: string;
}

const ESCAPES: Record<string, string> = { b: '\b', t: '\t', n: '\n', r: '\r', '\\': '\\', s: ' ', '"': '"', "'": "'" };

/** The value after `=`: quoted (escapes apply, the rest of the line may only be a comment) or bare (a # starts a comment). */
function parseValue(raw: string, where: string): string {
  const v = raw.trim();
  const q = v[0];
  if (q === '"' || q === "'") {
    let out = '';
    for (let i = 1; i < v.length; i++) {
      const c = v[i]!;
      if (c === '\\' && i + 1 < v.length) {
        const n = v[++i]!;
        out += ESCAPES[n] ?? '\\' + n;
        continue;
      }
      if (c === q) {
        const rest = v.slice(i + 1).trim();
        if (rest !== '' && !rest.startsWith('#') && !rest.startsWith(';')) throw inputError(`${where}: text after the closing quote`); // not echoed: it may be part of a password
        return out;
      }
      out += c;
    }
    throw inputError(`${where}: the value's quote is never closed`);
  }
  const hash = v.indexOf('#');
  const bare = (hash >= 0 ? v.slice(0, hash) : v).trim();
  return bare.replace(/\\(.)/g, (m, n: string) => ESCAPES[n] ?? m);
}

export function parseOptionFile(text: string, file: string): ClientOptions {
  const out: ClientOptions = {};
  let group: string | undefined;
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const where = `${file}:${i + 1}`;
    const line = lines[i]!.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    if (line.startsWith('!')) throw inputError(`${where}: ${line.split(/\s/)[0]} is not supported by leapfrog; put the [client] options in this file`);
    const header = /^\[\s*([^\]]+?)\s*\]\s*(#.*)?$/.exec(line);
    if (header) {
      group = header[1]!.toLowerCase();
      continue;
    }
    if (line.startsWith('[')) throw inputError(`${where}: a group header must look like [client]`);
    if (group === undefined) throw inputError(`${where}: an option before any [group] header`);
    const eq = line.indexOf('=');
    const name = (eq < 0 ? line : line.slice(0, eq)).trim().toLowerCase().replace(/-/g, '_');
    if (group !== 'client') continue;
    if (!/^[a-z0-9_]+$/.test(name)) throw inputError(`${where}: "${name}" is not an option name`);
    if (eq < 0) continue; // a flag such as `compress`: nothing leapfrog needs
    const value = parseValue(line.slice(eq + 1), `${where}: ${name}`);
    switch (name) {
      case 'user':
      case 'password':
      case 'host':
      case 'socket':
        out[name] = value;
        break;
      case 'port':
        if (!/^\d+$/.test(value) || Number(value) < 1 || Number(value) > 65535) throw inputError(`${where}: port must be a number from 1 to 65535, not "${value}"`);
        out.port = Number(value);
        break;
      default:
        break; // other client options (default-character-set, ssl-…) are for other programs
    }
  }
  return out;
}

export function readOptionFile(file: string): ClientOptions {
  const text = readSmallFile(file, `--defaults-file ${file}`, 'option file', 1024 * 1024).toString('utf8');
  return parseOptionFile(text, file);
}
