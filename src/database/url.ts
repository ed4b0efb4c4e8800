import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { inputError } from '../errors.js';
import { registerSecret } from '../report/secrets.js';
import type { ClientOptions } from './option-file.js';

/**
 * Where the chain's databases live. SQLite: one file per database in a
 * directory (the embedded default). MySQL/MariaDB: one schema per database
 * on a server.
 */
export type Target =
  | { kind: 'sqlite'; dir: string }
  | {
      kind: 'mysql';
      host: string;
      port: number;
      user: string;
      password: string | undefined;
      socket: string | undefined;
    };

/** Everything a config template may say about one database. */
export interface DatabaseAddress {
  /** SQLAlchemy-style URL, as the toolchains read it from their config. */
  url: string;
  /** The same URL with the password replaced by ****, for output and the ledger. */
  redactedUrl: string;
  name: string;
  host: string;
  port: string;
  user: string;
  password: string;
  socket: string;
  /** SQLite only: the database file. */
  path: string;
}

const SQLITE_SUFFIX = '.sqlite3';

/**
 * Parse --db. A MySQL URL's own fields come first; the password then falls
 * back to LEAPFROG_DB_PASSWORD and then to the option file, and user, host,
 * port and socket to the option file (as the mysql clients let the command
 * line override their option files).
 */
export function parseTargetUrl(raw: string, passwordFromEnv?: string, optionFile: ClientOptions = {}): Target {
  if (raw.startsWith('sqlite:')) {
    let rest = raw.slice('sqlite:'.length);
    if (rest.startsWith('//')) rest = rest.replace(/^\/\/(localhost)?/, '');
    if (rest === '') throw inputError(`--db ${raw}: a SQLite target needs a directory, e.g. sqlite:./cloud or sqlite:/var/lib/cloud`);
    const dir = path.resolve(rest);
    if (existsSync(dir) && !statSync(dir).isDirectory()) {
      throw inputError(`--db ${raw}: ${dir} is a file, not a directory; sqlite:DIR names the directory that holds one .sqlite3 file per database`);
    }
    return { kind: 'sqlite', dir };
  }
  if (raw.startsWith('mysql://') || raw.startsWith('mariadb://')) {
    let u: URL;
    try {
      u = new URL(raw.replace(/^mariadb:/, 'mysql:'));
    } catch {
      throw inputError(`--db ${redactUrl(raw)}: not a valid URL; expected mysql://user[:password]@host[:port] or mysql://user@localhost?socket=/path`);
    }
    if (u.pathname && u.pathname !== '/') {
      throw inputError(`--db ${redactUrl(raw)}: the URL names a server, not a database (drop "${u.pathname}"); the chain says which databases to use`);
    }
    for (const key of u.searchParams.keys()) {
      if (key !== 'socket') throw inputError(`--db ${redactUrl(raw)}: unknown parameter "${key}"; the only one is ?socket=/path`);
    }
    const hostInUrl = u.hostname !== '';
    // As the mysql clients do: a socket only when the host is localhost.
    const socket = u.searchParams.get('socket') ?? (!hostInUrl && (optionFile.host ?? 'localhost') === 'localhost' ? optionFile.socket : undefined);
    const decode = (part: 'user' | 'password', text: string): string => {
      try {
        return decodeURIComponent(text);
      } catch {
        throw inputError(`--db ${redactUrl(raw)}: the ${part} has a "%" that is not followed by two hex digits; in a URL write % as %25 (and @ : / as %40 %3A %2F), or give the password through LEAPFROG_DB_PASSWORD or --defaults-file`);
      }
    };
    const password = u.password !== '' ? decode('password', u.password) : (passwordFromEnv ?? optionFile.password);
    // From here on, output, the ledger and step logs mask it in every form leapfrog writes it.
    registerSecret(password);
    registerSecret(u.password);
    return {
      kind: 'mysql',
      host: hostInUrl ? u.hostname : (optionFile.host ?? 'localhost'),
      port: u.port ? Number(u.port) : hostInUrl ? 3306 : (optionFile.port ?? 3306),
      user: u.username !== '' ? decode('user', u.username) : (optionFile.user ?? 'root'),
      password,
      socket,
    };
  }
  throw inputError(`--db ${redactUrl(raw)}: unknown scheme; use sqlite:DIR (one file per database in DIR) or mysql://user@host:port`);
}

/**
 * Replace the password in a URL with ****. A URL's userinfo ends at its
 * last `@` (WHATWG URL parsing, https://url.spec.whatwg.org/#authority-state),
 * so a password typed with a raw `@` or space is masked whole.
 */
export function redactUrl(raw: string): string {
  return raw.replace(/^([a-z][a-z0-9+.-]*:\/\/[^:/@\s]*:).*@/is, '$1****@');
}

/**
 * The target as shown and as the ledger keys it: never the password, so the
 * same server is the same target wherever its password came from.
 */
export function describeTarget(t: Target): string {
  if (t.kind === 'sqlite') return `sqlite:${t.dir}`;
  return t.socket ? `mysql://${t.user}@localhost?socket=${t.socket}` : `mysql://${t.user}@${t.host}:${t.port}`;
}

export function sqliteFile(dir: string, name: string): string {
  return path.join(dir, name + SQLITE_SUFFIX);
}
