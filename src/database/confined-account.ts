import { randomBytes } from 'node:crypto';
import mysql from 'mysql2/promise';
import { LeapfrogError } from '../errors.js';
import { mysqlConnection, type MysqlTarget } from './mysql.js';
import { registerSecret } from '../report/secrets.js';
import { describeTarget } from './url.js';

/**
 * A temporary account for a `rehearse --server` whose grants cover only the
 * rehearsal's prefixed databases: whatever a dump statement or a step says
 * (`UPDATE compute.instances …`, `DROP DATABASE identity`), the server
 * itself refuses it outside `prefix*`, so no parser of ours has to be right
 * about it. Created before the restore, dropped after, however it ended.
 *
 * The grant names a database pattern: in GRANT … ON `db`.*, `_` and `%` are
 * wildcards and `\_`, `\%` match themselves (MariaDB KB, "GRANT",
 * Database Privileges: "you can use the _ and % wildcards … to grant
 * privileges on databases whose name match … use \_ for a literal _").
 */

export interface ConfinedAccount {
  /** The account's target: same server and way in, the temporary user and password. */
  target: MysqlTarget;
  user: string;
  hosts: readonly string[];
  /** The GRANT's database pattern, e.g. lfr1a2b3c\_%. */
  pattern: string;
}

const LOOPBACK = new Set(['localhost', '127.0.0.1', '::1']);
const ident = (name: string) => `\`${name.replace(/`/g, '``')}\``;

/** `prefix` as a GRANT database pattern matching exactly the names that start with it. */
export function grantPattern(prefix: string): string {
  return prefix.replace(/[\\_%]/g, (c) => `\\${c}`) + '%';
}

/**
 * What the server account lacks to create a confined account: CREATE USER
 * and GRANT OPTION, both global (SHOW GRANTS lines `… ON *.* …`). Roles
 * are not followed: an account that has them only through a role is
 * refused here and can SET DEFAULT ROLE or be granted them directly.
 */
export function missingPrivileges(grants: readonly string[]): string[] {
  let createUser = false;
  let grantOption = false;
  for (const line of grants) {
    const m = /^GRANT\s+(.+?)\s+ON\s+\*\.\*\s+TO\s/i.exec(line);
    if (!m) continue;
    const privs = m[1]!.split(',').map((p) => p.trim().toUpperCase());
    if (privs.includes('ALL PRIVILEGES') || privs.includes('ALL') || privs.includes('CREATE USER')) createUser = true;
    if (/\sWITH\s+(?:.*\s)?GRANT\s+OPTION\b/i.test(line)) grantOption = true;
  }
  return [...(createUser ? [] : ['CREATE USER']), ...(grantOption ? [] : ['GRANT OPTION'])];
}

async function connect(t: MysqlTarget): Promise<mysql.Connection> {
  try {
    return await mysql.createConnection(mysqlConnection(t));
  } catch (err) {
    throw new LeapfrogError('input', `--server: cannot connect to ${describeTarget(t)} (${(err as { code?: string }).code ?? (err as Error).message})`, { cause: err });
  }
}

/**
 * Run `cb` with a temporary account confined to databases named `prefix…`.
 * Refused (nothing created) when the server account cannot create it. The
 * account is bound to the host the server sees this client as (USER()),
 * and for a loopback client to both localhost and 127.0.0.1, since a
 * toolchain's client may take the socket where leapfrog took TCP.
 */
export async function withConfinedAccount<T>(admin: MysqlTarget, prefix: string, log: (line: string) => void, cb: (a: ConfinedAccount) => Promise<T>): Promise<T> {
  const user = `leapfrog_r_${randomBytes(4).toString('hex')}`;
  // 144 random bits, and one of each class a password-check plugin (simple_password_check, validate_password) may demand.
  const password = `${randomBytes(18).toString('base64url')}-Aa9`;
  registerSecret(password);
  const pattern = grantPattern(prefix);
  const created: string[] = [];
  let hosts: string[] = [];
  const c = await connect(admin);
  try {
    const [rows] = await c.query('SHOW GRANTS FOR CURRENT_USER()');
    const grants = (rows as Record<string, string>[]).map((r) => String(Object.values(r)[0]));
    const missing = missingPrivileges(grants);
    if (missing.length > 0) {
      throw new LeapfrogError(
        'refused',
        `--server: the account ${describeTarget(admin)} lacks ${missing.join(' and ')}: a --server rehearsal restores and runs as a temporary account confined to the ${prefix}* databases, and this account cannot create it. Grant it (GRANT CREATE USER ON *.* TO … WITH GRANT OPTION), use an account that has them, or rehearse on a scratch server (leave out --server). Nothing was done`,
      );
    }
    // The pattern must match only what the rehearsal creates: a short --prefix could also match a real database.
    const [matching] = await c.query('SELECT SCHEMA_NAME AS n FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE ? ORDER BY 1', [pattern]);
    const existing = (matching as { n: string }[]).map((r) => r.n);
    if (existing.length > 0) {
      throw new LeapfrogError('refused', `--server: database(s) ${existing.join(', ')} on ${describeTarget(admin)} already start with the prefix ${prefix}; the rehearsal's account would be granted them too. Choose another --prefix (or leave it out for a random one). Nothing was done`);
    }
    const [me] = await c.query('SELECT USER() AS u');
    const seenAs = String((me as { u: string }[])[0]!.u);
    const host = seenAs.slice(seenAs.lastIndexOf('@') + 1);
    hosts = LOOPBACK.has(host) ? [...new Set(['localhost', '127.0.0.1', host])] : [host];
    try {
      for (const h of hosts) {
        await c.query('CREATE USER ?@? IDENTIFIED BY ?', [user, h, password]);
        created.push(h);
        await c.query(`GRANT ALL PRIVILEGES ON ${ident(pattern)}.* TO ?@?`, [user, h]);
      }
    } catch (err) {
      throw new LeapfrogError('refused', `--server: cannot create the rehearsal's confined account on ${describeTarget(admin)}: ${(err as Error).message}. Nothing was restored`, { cause: err });
    }
  } catch (err) {
    await dropAccount(c, user, created).catch(() => {});
    throw err;
  } finally {
    await c.end().catch(() => c.destroy());
  }
  log(`confined to a temporary account ${hosts.map((h) => `'${user}'@'${h}'`).join(', ')}: ALL on ${pattern}.* and nothing else`);
  let done = false;
  try {
    const out = await cb({ target: { ...admin, user, password }, user, hosts, pattern });
    done = true;
    return out;
  } finally {
    // A fresh connection: the first may have timed out during a long run.
    try {
      const d = await connect(admin);
      try {
        await dropAccount(d, user, created);
      } finally {
        await d.end().catch(() => d.destroy());
      }
      log(`dropped the temporary account ${user}`);
    } catch (err) {
      // Never hides the rehearsal's own outcome; says what is left and how to remove it.
      const text = `could not drop the temporary account ${user} (${(err as Error).message}); drop it by hand: ${created.map((h) => `DROP USER '${user}'@'${h}';`).join(' ')}`;
      if (done) throw new LeapfrogError('unexpected', text, { cause: err });
      log(text);
    }
  }
}

/** Drop the account, and end its sessions still open (DROP USER does not end them; it needs CONNECTION ADMIN or PROCESS to see them, else they end with their clients). */
async function dropAccount(c: mysql.Connection, user: string, hosts: readonly string[]): Promise<void> {
  for (const h of hosts) await c.query('DROP USER IF EXISTS ?@?', [user, h]);
  try {
    const [rows] = await c.query('SELECT ID AS id FROM information_schema.PROCESSLIST WHERE USER = ?', [user]);
    for (const r of rows as { id: number }[]) await c.query('KILL CONNECTION ?', [r.id]).catch(() => {});
  } catch {
    // not visible to this account
  }
}
