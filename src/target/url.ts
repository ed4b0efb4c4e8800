import path from 'node:path';
import { inputError } from '../errors.js';

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

export function parseTargetUrl(raw: string, passwordFromEnv?: string): Target {
  if (raw.startsWith('sqlite:')) {
    let rest = raw.slice('sqlite:'.length);
    if (rest.startsWith('//')) rest = rest.replace(/^\/\/(localhost)?/, '');
    if (rest === '') throw inputError(`--db ${raw}: a SQLite target needs a directory, e.g. sqlite:./cloud or sqlite:/var/lib/cloud`);
    return { kind: 'sqlite', dir: path.resolve(rest) };
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
    const socket = u.searchParams.get('socket') ?? undefined;
    const password = u.password !== '' ? decodeURIComponent(u.password) : passwordFromEnv;
    return {
      kind: 'mysql',
      host: u.hostname || 'localhost',
      port: u.port ? Number(u.port) : 3306,
      user: decodeURIComponent(u.username || 'root'),
      password,
      socket,
    };
  }
  throw inputError(`--db ${redactUrl(raw)}: unknown scheme; use sqlite:DIR (one file per database in DIR) or mysql://user@host:port`);
}

/** Replace any password in a URL-ish string with ****. */
export function redactUrl(raw: string): string {
  return raw.replace(/(\/\/[^:/@\s]*:)[^@\s]*@/g, '$1****@');
}

export function describeTarget(t: Target): string {
  if (t.kind === 'sqlite') return `sqlite:${t.dir}`;
  const auth = t.password === undefined ? t.user : `${t.user}:****`;
  return t.socket ? `mysql://${auth}@localhost?socket=${t.socket}` : `mysql://${auth}@${t.host}:${t.port}`;
}

export function sqliteFile(dir: string, name: string): string {
  return path.join(dir, name + SQLITE_SUFFIX);
}

export function databaseAddress(t: Target, name: string): DatabaseAddress {
  if (t.kind === 'sqlite') {
    const file = sqliteFile(t.dir, name);
    const url = `sqlite:///${file}`;
    return { url, redactedUrl: url, name, host: '', port: '', user: '', password: '', socket: '', path: file };
  }
  const user = encodeURIComponent(t.user);
  const pw = t.password === undefined ? '' : `:${encodeURIComponent(t.password)}`;
  const hostPart = t.socket ? 'localhost' : `${t.host}:${t.port}`;
  const query = t.socket ? `?unix_socket=${t.socket}` : '';
  const url = `mysql+pymysql://${user}${pw}@${hostPart}/${name}${query}`;
  return {
    url,
    redactedUrl: redactUrl(url),
    name,
    host: t.socket ? 'localhost' : t.host,
    port: t.socket ? '' : String(t.port),
    user: t.user,
    password: t.password ?? '',
    socket: t.socket ?? '',
    path: '',
  };
}
