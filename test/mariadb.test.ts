/**
 * What only a server target has: users with passwords, option files, the
 * process list. Real MariaDB, scratch databases and users with a unique
 * prefix, dropped afterwards.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { after, test } from 'node:test';
import mysql from 'mysql2/promise';
import { describeTargets, fakeCloud, leapfrog, MARIADB_PORT, mariadbOptions, withMariadb, type CliResult } from './helpers.js';

/** Every file under dir, decompressed when gzipped, except those in `skip` directories. */
function filesUnder(dir: string, skip: readonly string[]): { file: string; bytes: Buffer }[] {
  const out: { file: string; bytes: Buffer }[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) {
      if (!skip.includes(e.name)) out.push(...filesUnder(p, skip));
    } else if (e.isFile()) {
      const raw = readFileSync(p);
      out.push({ file: p, bytes: p.endsWith('.gz') ? gunzipSync(raw) : raw });
    }
  }
  return out;
}

describeTargets(
  'a server target',
  (kind) => {
    test('a user with a password from an option file: the whole chain runs, and the password is in no output, log or ledger row', async () => {
      const cloud = await fakeCloud({ kind, instances: 20, nullUuids: 1 });
      const user = cloud.names.compute.replace(/_compute$/, '');
      const password = `Pw${randomBytes(8).toString('hex')}`;
      const grantOn = `${user.replace(/_/g, '\\_')}\\_%`;
      await withMariadb(async (c) => {
        await c.query(`CREATE USER '${user}'@'%' IDENTIFIED BY '${password}'`);
        await c.query(`GRANT ALL ON \`${grantOn}\`.* TO '${user}'@'%'`);
        await c.query(`GRANT PROCESS ON *.* TO '${user}'@'%'`); // the offline guard reads the process list
      });
      after(() => withMariadb(async (c) => void (await c.query(`DROP USER IF EXISTS '${user}'@'%'`))));
      const cnf = path.join(cloud.dir, 'my.cnf');
      writeFileSync(cnf, `# the operator's option file\n[client]\nuser = ${user}\npassword = "${password}"\nhost = 127.0.0.1\nport = ${MARIADB_PORT}\n`, { mode: 0o600 });
      const args = ['--chain', cloud.chain, '--db', 'mysql://', '--defaults-file', cnf, '--state-dir', cloud.state, '--cache-dir', cloud.args()[7]!];

      const outputs: CliResult[] = [];
      const cli = async (a: string[]) => {
        const r = await leapfrog(a);
        outputs.push(r);
        return r;
      };
      assert.equal((await cli(['plan', ...args])).exitCode, 0);
      const run = await cli(['run', ...args]);
      assert.equal(run.exitCode, 0, run.stderr);
      assert.match(run.stdout, /Run 1 succeeded/);
      const runJson = await cli(['run', ...args, '--format', 'json']);
      assert.equal(runJson.exitCode, 0, runJson.stderr);
      await cli(['ledger', 'runs', '--state-dir', cloud.state]);
      await cli(['ledger', 'show', '--state-dir', cloud.state]);
      await cli(['ledger', 'show', '--state-dir', cloud.state, '--format', 'json']);
      const rb = await cli(['rollback', ...args, '--to', 'start', '--yes']);
      assert.equal(rb.exitCode, 0, rb.stderr);
      await cli(['rollback', ...args, '--to', 'start', '--yes', '--format', 'json']);
      await cli(['ledger', 'show', '--state-dir', cloud.state]);
      // A wrong password fails, and says so without echoing either password.
      const wrong = await cli(['plan', ...args.map((a) => (a === 'mysql://' ? `mysql://${user}:${password}x@127.0.0.1:${MARIADB_PORT}` : a))]);
      assert.equal(wrong.exitCode, 2, wrong.stderr);
      assert.match(wrong.stderr, /cannot reach the target database \(ER_ACCESS_DENIED_ERROR: Access denied for user/);

      for (const o of outputs) {
        assert.ok(!o.stdout.includes(password) && !o.stderr.includes(password), `the password leaked into output:\n${o.stdout}\n${o.stderr}`);
      }
      // Logs, the ledger (its file and WAL), snapshots (decompressed): everything but the
      // rendered config files, which hold the password by design (mode 0600).
      const files = filesUnder(cloud.state, ['config', 'envs']);
      assert.ok(files.some((f) => f.file.endsWith('.log')), 'step logs were written');
      assert.ok(files.some((f) => f.file.endsWith('ledger.sqlite3')));
      for (const f of files) assert.ok(!f.bytes.includes(password), `the password is in ${f.file}`);
      for (const f of filesUnder(path.join(cloud.state, 'config'), [])) assert.equal(statSync(f.file).mode & 0o077, 0, `${f.file} is private`);
    });

    test('a socket target (mysql://root@localhost?socket=PATH) runs the chain and rolls it back', async (t) => {
      const socket = await withMariadb(async (c) => ((await c.query('SELECT @@socket s'))[0] as { s: string }[])[0]!.s);
      if (!existsSync(socket)) return t.skip(`the server's socket ${socket} is not on this machine`);
      const cloud = await fakeCloud({ kind, instances: 10 });
      const args = cloud.args().map((a) => (a === cloud.db ? `mysql://root@localhost?socket=${socket}` : a));
      const r = await leapfrog(['run', ...args, '--format', 'json']);
      assert.equal(r.exitCode, 0, r.stderr);
      assert.equal(JSON.parse(r.stdout).target, `mysql://root@localhost?socket=${socket}`);
      assert.deepEqual(JSON.parse(r.stdout).versions.image, { main: 'mitaka02' });
      const rb = await leapfrog(['rollback', ...args, '--to', 'start', '--yes', '--format', 'json']);
      assert.equal(rb.exitCode, 0, rb.stderr);
      assert.deepEqual(JSON.parse(rb.stdout).versions.image, { main: 'juno' });
    });

    test('a connected client blocks run and rollback, listed by user, host, database and time; --force proceeds', async () => {
      const cloud = await fakeCloud({ kind, instances: 10 });
      const service = await mysql.createConnection({ ...mariadbOptions(), database: cloud.names.identity });
      try {
        await service.query('SELECT 1');
        const r = await leapfrog(['run', ...cloud.args()]);
        assert.equal(r.exitCode, 3, r.stderr);
        assert.match(r.stderr, /1 other client session is connected to the chain's databases: are the services still running\? .*Nothing was run\./);
        assert.match(r.stderr, new RegExp(`session ${service.threadId}: user root from [\\w.:]+ on ${cloud.names.identity}, Sleep for \\d+ s`));
        assert.equal(await cloud.scalar('compute', 'SELECT version FROM migrate_version'), 254, 'nothing ran');
        assert.deepEqual(JSON.parse((await leapfrog(['ledger', 'runs', '--state-dir', cloud.state, '--format', 'json'])).stdout).runs, []);

        const forced = await leapfrog(['run', ...cloud.args(), '--force', '--until', 'kilo']);
        assert.equal(forced.exitCode, 0, forced.stderr);
        assert.match(forced.stderr, new RegExp(`Warning: going on with 1 other session\\(s\\) connected .*because of --force:\\n  session ${service.threadId}: user root`));

        const rb = await leapfrog(['rollback', ...cloud.args(), '--to', 'start', '--yes']);
        assert.equal(rb.exitCode, 3, rb.stderr);
        assert.match(rb.stderr, new RegExp(`session ${service.threadId}: user root`));
      } finally {
        await service.end();
      }
      // The service gone, the rollback goes ahead.
      const rb = await leapfrog(['rollback', ...cloud.args(), '--to', 'start', '--yes']);
      assert.equal(rb.exitCode, 0, rb.stderr);
      assert.equal(await cloud.scalar('compute', 'SELECT version FROM migrate_version'), 254);
    });
  },
  ['mariadb'],
);
