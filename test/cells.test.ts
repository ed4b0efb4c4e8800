/**
 * Chains that place databases on other servers (`servers:`) and run steps
 * once per cell (`cells:`, `per-cell:`), as nova's cell databases need.
 *
 * The project under test is nova-shaped: an api database and two cells,
 * cell0 and cell1. Its toolchain is a few lines of shell driving the real
 * sqlite3 or mariadb client (as the fake cloud's toolchains do), run in the
 * fake cloud's compute-kilo env: a sync that records an alembic revision and
 * (re)fills a `work` table, and a data step that marks one row of `work` done
 * per run (exit 1 while rows remain) and writes into `marks` the cell name and
 * URL it was given, in the database its rendered config file names. So each
 * cell's database shows which step reached it, with which address.
 *
 * Two servers: on MariaDB the test run's server (A) and a throwaway mariadbd
 * the test starts (B); on SQLite two directories. cell1 lives on B
 * (`servers: { cell1: cell1 }`, `--db cell1=B`); api and cell0 on A.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import Database from 'better-sqlite3';
import mysql from 'mysql2/promise';
import { stringify } from 'yaml';
import { startScratchServer, stopScratchServer, type ScratchServer } from '../src/rehearse/scratch-server.js';
import { CACHE, ENVS, MARIADB_URL, describeTargets, dropDatabases, leapfrog, ledgerRows, mariadbOptions, tempDir, uniquePrefix, type TargetKind } from './helpers.js';

const RUN_SQL = `CNF=$1
if [ "$(head -c 1 "$CNF")" = / ]; then q() { sqlite3 "$(cat "$CNF")" "$1"; }; else q() { mariadb --defaults-extra-file="$CNF" -N -B -e "$1"; }; fi
`;

// $1 config, $2 revision, $3 which database (api or the cell's name), $4 a file: while it exists, cell1's sync ends at a revision the chain does not expect.
const SYNC = `set -e
${RUN_SQL}q "CREATE TABLE IF NOT EXISTS alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)"
q "CREATE TABLE IF NOT EXISTS work (id INTEGER NOT NULL PRIMARY KEY, done INTEGER NOT NULL)"
q "CREATE TABLE IF NOT EXISTS marks (cell VARCHAR(64) NOT NULL, url VARCHAR(512) NOT NULL)"
rev=$2
if [ -e "$4" ] && [ "$3" = cell1 ]; then rev=r1wrong; fi
q "DELETE FROM work"
n=2; if [ "$3" = cell1 ]; then n=3; fi
i=1; while [ $i -le $n ]; do q "INSERT INTO work (id, done) VALUES ($i, 0)"; i=$((i + 1)); done
q "DELETE FROM alembic_version"
q "INSERT INTO alembic_version (version_num) VALUES ('$rev')"
echo "Running upgrade -> $rev on $3"
`;

// $1 config, $2 cell name, $3 cell URL: one row of work per run, exit 1 while rows remain.
const DATA = `set -e
${RUN_SQL}q "INSERT INTO marks (cell, url) VALUES ('$2', '$3')"
id=$(q "SELECT MIN(id) FROM work WHERE done = 0")
if [ -n "$id" ] && [ "$id" != NULL ]; then q "UPDATE work SET done = 1 WHERE id = $id"; fi
left=$(q "SELECT COUNT(*) FROM work WHERE done = 0")
echo "$2: $left rows left"
[ "$left" = 0 ] || exit 1
`;

const cnf = (v: string) => `{% if ${v}.path %}{{ ${v}.path }}{% else %}[client]
user={{ ${v}.user }}
password={{ ${v}.password }}
{% if ${v}.socket %}socket={{ ${v}.socket }}{% else %}host={{ ${v}.host }}
port={{ ${v}.port }}{% endif %}
database={{ ${v}.name }}
{% endif %}`;

interface Server {
  /** --db value */
  db: string;
  exec(name: string, sql: string): Promise<void>;
  rows<T = Record<string, unknown>>(name: string, sql: string): Promise<T[]>;
  exists(name: string): Promise<boolean>;
}

function sqliteServer(dir: string): Server {
  mkdirSync(dir, { recursive: true });
  const file = (name: string) => path.join(dir, `${name}.sqlite3`);
  return {
    db: `sqlite:${dir}`,
    async exec(name, sql) {
      const d = new Database(file(name));
      try {
        d.exec(sql);
      } finally {
        d.close();
      }
    },
    async rows<T>(name: string, sql: string) {
      const d = new Database(file(name), { readonly: true, fileMustExist: true });
      try {
        return d.prepare(sql).all() as T[];
      } finally {
        d.close();
      }
    },
    async exists(name) {
      return existsSync(file(name));
    },
  };
}

function mariadbServer(url: string): Server {
  const on = async <T>(cb: (c: mysql.Connection) => Promise<T>): Promise<T> => {
    const c = await mysql.createConnection(mariadbOptions(url));
    try {
      return await cb(c);
    } finally {
      await c.end();
    }
  };
  return {
    db: url,
    exec: (name, sql) =>
      on(async (c) => {
        await c.query(`CREATE DATABASE IF NOT EXISTS \`${name}\``);
        await c.query(`USE \`${name}\``);
        await c.query(sql);
      }),
    rows: <T>(name: string, sql: string) =>
      on(async (c) => {
        await c.query(`USE \`${name}\``);
        return (await c.query(sql))[0] as T[];
      }),
    exists: (name) => on(async (c) => ((await c.query('SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?', [name]))[0] as unknown[]).length > 0),
  };
}

interface World {
  kind: TargetKind;
  a: Server;
  b: Server;
  names: { api: string; cell0: string; cell1: string };
  chain: string;
  wrong: string;
  state: string;
  /** --chain, --db A, --db cell1=B, --state-dir, --cache-dir */
  args(chain?: string): string[];
}

/** The chain: api and cell0 at r0 at the start, cell1 created by its first sync; release r1 moves them all. */
function chainDoc(names: World['names'], wrong: string, edit?: (doc: Record<string, any>) => void): Record<string, any> {
  const doc: Record<string, any> = {
    chain: 'cells-test',
    envs: ENVS,
    projects: {
      svc: {
        databases: names,
        servers: { cell1: 'cell1' },
        cells: ['cell0', 'cell1'],
        version: { api: 'alembic', cell0: 'alembic', cell1: 'alembic' },
        start: { api: 'r0', cell0: 'r0' },
        create: { cell1: {} },
        config: { 'api.cnf': cnf('db.api'), 'cell.cnf': cnf('cell.db') },
      },
    },
    releases: [
      {
        release: 'r1',
        env: 'compute-kilo',
        steps: [
          { project: 'svc', sync: ['sh', '-c', SYNC, 'svc-manage', "{{ config['api.cnf'] }}", 'r1', 'api', wrong], expect: { api: 'r1' } },
          { project: 'svc', 'per-cell': true, sync: ['sh', '-c', SYNC, 'svc-manage', "{{ config['cell.cnf'] }}", 'r1', '{{ cell.name }}', wrong], expect: { cell: 'r1' } },
          {
            project: 'svc',
            name: 'mark the work done',
            'per-cell': true,
            data: ['sh', '-c', DATA, 'svc-manage', "{{ config['cell.cnf'] }}", '{{ cell.name }}', '{{ cell.db.url }}'],
            'needed-when': { database: 'cell', query: 'SELECT COUNT(*) FROM work WHERE done = 0' },
            'repeat-while-exit': 1,
            'max-runs': 10,
            touches: ['cell.work'],
          },
        ],
      },
    ],
  };
  edit?.(doc);
  return doc;
}

function writeChain(dir: string, doc: Record<string, any>, name = 'cells-test'): string {
  const file = path.join(dir, `${name}.yaml`);
  writeFileSync(file, stringify(doc));
  return file;
}

let scratch: ScratchServer | undefined;
const worlds: World[] = [];

async function world(kind: TargetKind): Promise<World> {
  const dir = tempDir('cells');
  const prefix = kind === 'mariadb' ? uniquePrefix() : '';
  const names = { api: `${prefix}svc_api`, cell0: `${prefix}svc_cell0`, cell1: `${prefix}svc_cell1` };
  const a = kind === 'sqlite' ? sqliteServer(path.join(dir, 'a')) : mariadbServer(MARIADB_URL);
  const b = kind === 'sqlite' ? sqliteServer(path.join(dir, 'b')) : mariadbServer(`mysql://root@127.0.0.1:${scratch!.port}`);
  // api and cell0 at the chain's start (r0, with rows of work); cell1 does not exist yet.
  for (const n of [names.api, names.cell0]) {
    await a.exec(n, `CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY); INSERT INTO alembic_version VALUES ('r0');
      CREATE TABLE work (id INTEGER NOT NULL PRIMARY KEY, done INTEGER NOT NULL); INSERT INTO work VALUES (1, 1);
      CREATE TABLE marks (cell VARCHAR(64) NOT NULL, url VARCHAR(512) NOT NULL);`);
  }
  const wrong = path.join(dir, 'wrong');
  const chain = writeChain(dir, chainDoc(names, wrong));
  const state = path.join(dir, 'state');
  const w: World = { kind, a, b, names, chain, wrong, state, args: (c = chain) => ['--chain', c, '--db', a.db, '--db', `cell1=${b.db}`, '--state-dir', state, '--cache-dir', CACHE] };
  worlds.push(w);
  return w;
}

async function disposeWorlds(): Promise<void> {
  for (const w of worlds.splice(0)) {
    if (w.kind !== 'mariadb') continue;
    await dropDatabases([w.names.api, w.names.cell0, w.names.cell1]);
    await dropDatabases([w.names.cell1], w.b.db);
  }
}

const revision = async (s: Server, name: string) => ((await s.rows<{ v: string }>(name, 'SELECT version_num AS v FROM alembic_version'))[0]?.v);

describeTargets('servers: and per-cell steps', (kind) => {
  before(async () => {
    if (kind === 'mariadb') scratch = await startScratchServer({ parentDir: tempDir('cells-server') });
  });
  after(async () => {
    await disposeWorlds();
    if (scratch) await stopScratchServer(scratch, { keep: false });
    scratch = undefined;
  });

  test('run puts cell1 on its own server and runs the per-cell steps once per cell there, with that cell\'s address; a second run does nothing; status shows both servers; rollback puts both back', async () => {
    const w = await world(kind);

    const plan = await leapfrog(['plan', ...w.args(), '--format', 'json']);
    assert.equal(plan.exitCode, 0, plan.stderr);
    const planned = (JSON.parse(plan.stdout) as { steps: { id: string }[] }).steps.map((s) => s.id);
    assert.deepEqual(planned, ['r1/svc/1', 'r1/svc/2.cell0', 'r1/svc/2.cell1', 'r1/svc/3.cell0', 'r1/svc/3.cell1'], 'one step per cell, in the declared order');
    const text = await leapfrog(['plan', ...w.args()]);
    assert.equal(text.exitCode, 0, text.stderr);
    for (const id of planned.slice(1)) assert.match(text.stdout, new RegExp(`^.*${id.replace(/[./]/g, '\\$&')}\\b.*$`, 'm'), `plan shows ${id} on a line of its own`);
    assert.match(text.stdout, /svc@cell1\/cell\.cnf/, "cell1's steps are given cell1's rendering of cell.cnf");

    const check = await leapfrog(['check-migrations', ...w.args()]);
    assert.equal(check.exitCode, 0, `${check.stderr}${check.stdout}`);
    for (const id of planned) assert.match(check.stdout, new RegExp(`\\d+\\. ${id.replace(/[./]/g, '\\$&')} `), `check-migrations lists ${id}`);

    const run = await leapfrog(['run', ...w.args(), '--snapshot', 'first-hop']);
    assert.equal(run.exitCode, 0, run.stderr);

    // cell1 exists on B only, migrated and marked with its own URL; api and cell0 on A.
    assert.equal(await w.b.exists(w.names.cell1), true);
    assert.equal(await w.a.exists(w.names.cell1), false, 'cell1 was not put on the default server');
    assert.equal(await w.b.exists(w.names.cell0), false);
    assert.equal(await revision(w.b, w.names.cell1), 'r1');
    assert.equal(await revision(w.a, w.names.cell0), 'r1');
    assert.equal(await revision(w.a, w.names.api), 'r1');
    const marks = async (s: Server, n: string) => (await s.rows<{ cell: string; url: string }>(n, 'SELECT DISTINCT cell, url FROM marks')).map((r) => `${r.cell} ${r.url}`);
    const urlOn = (s: Server, n: string) => (kind === 'sqlite' ? new RegExp(`^sqlite:////.*/${s === w.a ? 'a' : 'b'}/${n}\\.sqlite3$`) : new RegExp(`^mysql\\+pymysql://root@127\\.0\\.0\\.1:${s === w.a ? new URL(MARIADB_URL).port : scratch!.port}/${n}`));
    const m1 = await marks(w.b, w.names.cell1);
    assert.equal(m1.length, 1, `cell1: ${m1.join('; ')}`);
    assert.match(m1[0]!, /^cell1 /);
    assert.match(m1[0]!.split(' ')[1]!, urlOn(w.b, w.names.cell1));
    const m0 = await marks(w.a, w.names.cell0);
    assert.equal(m0.length, 1, `cell0: ${m0.join('; ')}`);
    assert.match(m0[0]!, /^cell0 /);
    assert.match(m0[0]!.split(' ')[1]!, urlOn(w.a, w.names.cell0));
    assert.deepEqual(await marks(w.a, w.names.api), [], 'the per-cell data step never ran on api');

    // The ledger: one row per cell, each data step repeated for its own rows (2 in cell0, 3 in cell1).
    const steps = ledgerRows(w.state, "SELECT step_id, status, attempts FROM steps ORDER BY id");
    assert.deepEqual(
      steps.map((s) => `${s.step_id} ${s.status} ${s.attempts}`),
      ['r1/svc/1 succeeded 1', 'r1/svc/2.cell0 succeeded 1', 'r1/svc/2.cell1 succeeded 1', 'r1/svc/3.cell0 succeeded 2', 'r1/svc/3.cell1 succeeded 3'],
    );
    const target = ledgerRows(w.state, 'SELECT target FROM runs')[0]!.target as string;
    assert.match(target, new RegExp(`\\(${w.names.cell1}=`), 'the run is recorded against both servers');

    if (kind === 'mariadb') {
      // The offline guard asks every server: a client left on cell1's server stops the run.
      const client = await mysql.createConnection({ ...mariadbOptions(w.b.db), database: w.names.cell1 });
      try {
        const guarded = await leapfrog(['run', ...w.args()]);
        assert.equal(guarded.exitCode, 3, guarded.stderr);
        assert.match(guarded.stderr, new RegExp(`1 other client session is connected to the chain's databases[\\s\\S]*on ${w.names.cell1}`));
      } finally {
        await client.end();
      }
      // The run lock is taken on every server: another holder of cell1's lock on B stops the run before anything is read.
      const holder = await mysql.createConnection(mariadbOptions(w.b.db));
      try {
        assert.equal(((await holder.query('SELECT GET_LOCK(?, 0) AS got', [`leapfrog:db:${w.names.cell1}`]))[0] as { got: number }[])[0]!.got, 1);
        const locked = await leapfrog(['run', ...w.args()]);
        assert.equal(locked.exitCode, 4, locked.stderr);
        assert.match(locked.stderr, new RegExp(`server mysql://root@127\\.0\\.0\\.1:${scratch!.port}`));
      } finally {
        await holder.end();
      }
    }

    const again = await leapfrog(['run', ...w.args()]);
    assert.equal(again.exitCode, 0, again.stderr);
    assert.equal(ledgerRows(w.state, 'SELECT COUNT(*) n FROM steps')[0]!.n, 5, 'a second run runs nothing');

    const status = await leapfrog(['status', ...w.args(), '--format', 'json']);
    assert.equal(status.exitCode, 0, status.stderr);
    const st = JSON.parse(status.stdout) as { versions: Record<string, Record<string, string>>; verdict: string };
    assert.deepEqual(st.versions.svc, { api: 'r1', cell0: 'r1', cell1: 'r1' }, status.stdout);
    const statusText = await leapfrog(['status', ...w.args()]);
    assert.match(statusText.stdout, new RegExp(`${w.names.cell1}=`), 'status names the server cell1 is on');

    // Back to the start on both servers: cell1 (created by the run) dropped on B; api and cell0 restored on A.
    const rollback = await leapfrog(['rollback', ...w.args(), '--to', 'start', '--yes']);
    assert.equal(rollback.exitCode, 0, rollback.stderr);
    assert.equal(await w.b.exists(w.names.cell1), false);
    assert.equal(await revision(w.a, w.names.cell0), 'r0');
    assert.equal(await revision(w.a, w.names.api), 'r0');
    assert.deepEqual(await marks(w.a, w.names.cell0), []);

    const rerun = await leapfrog(['run', ...w.args()]);
    assert.equal(rerun.exitCode, 0, rerun.stderr);
    assert.equal(await revision(w.b, w.names.cell1), 'r1');
    assert.equal((await w.b.rows<{ n: number }>(w.names.cell1, 'SELECT COUNT(*) n FROM work WHERE done = 0'))[0]!.n, 0);
  });

  test("a per-cell sync's expect is checked per cell: cell1 ending elsewhere fails its own step, after cell0's succeeded", async () => {
    const w = await world(kind);
    writeFileSync(w.wrong, '');
    const run = await leapfrog(['run', ...w.args()]);
    assert.equal(run.exitCode, 1, run.stderr);
    assert.match(run.stderr, /step r1\/svc\/2\.cell1 \(sync in env compute-kilo\) exited 0, but cell1 is at r1wrong, not r1/);
    const steps = ledgerRows(w.state, 'SELECT step_id, status FROM steps ORDER BY id').map((s) => `${s.step_id} ${s.status}`);
    assert.deepEqual(steps, ['r1/svc/1 succeeded', 'r1/svc/2.cell0 succeeded', 'r1/svc/2.cell1 failed']);
    assert.equal(await revision(w.a, w.names.cell0), 'r1');
  });
});

describeTargets('chain input for servers and cells', (kind) => {
  const bad = async (edit: (doc: Record<string, any>) => void) => {
    const dir = tempDir('cells-bad');
    const file = writeChain(dir, chainDoc({ api: 'svc_api', cell0: 'svc_cell0', cell1: 'svc_cell1' }, path.join(dir, 'wrong'), edit));
    const r = await leapfrog(['plan', '--chain', file, '--db', `sqlite:${dir}`, '--state-dir', path.join(dir, 'state')]);
    return { ...r, file: path.relative(process.cwd(), file) || file };
  };

  test('bad servers:, cells: and per-cell: are input errors naming file:line:col and the field', async () => {
    const cases: [string, (d: Record<string, any>) => void, RegExp][] = [
      ['server of an unknown database', (d) => (d.projects.svc.servers = { cell9: 'x' }), /:\d+:\d+: projects\.svc\.servers\.cell9: "cell9" is not one of this project's databases \(api, cell0, cell1\)/],
      ['server name', (d) => (d.projects.svc.servers = { cell1: 'no/slash' }), /:\d+:\d+: projects\.svc\.servers\.cell1: "no\/slash" is not valid here/],
      ['unknown cell', (d) => (d.projects.svc.cells = ['cell0', 'cell7']), /:\d+:\d+: projects\.svc\.cells\[1\]: "cell7" is not one of this project's databases/],
      ['per-cell without cells', (d) => delete d.projects.svc.cells, /:\d+:\d+: releases\[0\]\.steps\[1\]\.per-cell: project svc declares no cells/],
      ['unknown cell in a subset', (d) => (d.releases[0].steps[2]['per-cell'] = ['cell1', 'api']), /:\d+:\d+: releases\[0\]\.steps\[2\]\.per-cell\[1\]: "api" is not a cell of project svc \(cell0, cell1\)/],
      ['cell outside a per-cell step', (d) => (d.releases[0].steps[0].sync[6] = '{{ cell.name }}'), /:\d+:\d+: releases\[0\]\.steps\[0\]\.sync\[6\]: template "\{\{ cell\.name \}\}": cell: only a per-cell step/],
      ['a per-cell config file outside a per-cell step', (d) => (d.releases[0].steps[0].sync[4] = "{{ config['cell.cnf'] }}"), /:\d+:\d+: releases\[0\]\.steps\[0\]\.sync\[4\]: .*config file cell\.cnf names cell, so it is rendered once per cell: only a per-cell step can pass it/],
      ['cell in expect outside a per-cell step', (d) => (d.releases[0].steps[0].expect = { cell: 'r1' }), /:\d+:\d+: releases\[0\]\.steps\[0\]\.expect\.cell: "cell" means the current cell's database, and this step is not per-cell/],
      ['cell in needed-when outside a per-cell step', (d) => delete d.releases[0].steps[2]['per-cell'], /:\d+:\d+: releases\[0\]\.steps\[2\]\.needed-when\.database: "cell" means the current cell's database/],
      ['a password in a per-cell argv', (d) => (d.releases[0].steps[1].sync[6] = '{{ cell.db.password }}'), /:\d+:\d+: releases\[0\]\.steps\[1\]\.sync\[6\]: .*cell\.db\.password: the password is not available to command lines/],
      ['cell in a config file of a project without cells', (d) => { delete d.projects.svc.cells; d.releases[0].steps = d.releases[0].steps.slice(0, 1); }, /:\d+:\d+: projects\.svc\.config\["cell\.cnf"\]: template: cell: project svc declares no cells/],
      ['per-cell key misspelt', (d) => (d.releases[0].steps[1]['per_cell'] = true), /:\d+:\d+: releases\[0\]\.steps\[1\]\.per_cell: unknown key "per_cell"/],
    ];
    for (const [what, edit, expected] of cases) {
      const r = await bad(edit);
      assert.equal(r.exitCode, 2, `${what}: ${r.stderr}`);
      assert.match(r.stderr, new RegExp(`${r.file.replace(/[.\\/]/g, '\\$&')}${expected.source}`), what);
    }
  });

  test('--db NAME=URL naming a server the chain lacks is an input error', async () => {
    const dir = tempDir('cells-bad');
    const file = writeChain(dir, chainDoc({ api: 'svc_api', cell0: 'svc_cell0', cell1: 'svc_cell1' }, path.join(dir, 'wrong')));
    const r = await leapfrog(['plan', '--chain', file, '--db', `sqlite:${dir}`, '--db', `cell2=sqlite:${dir}/x`, '--state-dir', path.join(dir, 'state')]);
    assert.equal(r.exitCode, 2, r.stderr);
    assert.match(r.stderr, /--db cell2=…: the chain names no server cell2; its servers are cell1/);
  });

  test('a server of the chain the command line does not give: plan, status and run say its databases are taken to be on the default server; check-migrations warns before it would create one there', async () => {
    const dir = tempDir('cells-unmapped');
    const file = writeChain(dir, chainDoc({ api: 'svc_api', cell0: 'svc_cell0', cell1: 'svc_cell1' }, path.join(dir, 'wrong')));
    const a = sqliteServer(path.join(dir, 'a'));
    for (const n of ['svc_api', 'svc_cell0']) await a.exec(n, "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY); INSERT INTO alembic_version VALUES ('r0');");
    const args = ['--chain', file, '--db', a.db, '--state-dir', path.join(dir, 'state'), '--cache-dir', CACHE];
    const note = new RegExp(`the chain puts svc_cell1 on server cell1, which the command line does not give \\(--db cell1=URL\\): it is taken to be on the default server, sqlite:${path.join(dir, 'a').replace(/[.\\/]/g, '\\$&')}`);
    for (const command of ['plan', 'status']) {
      const r = await leapfrog([command, ...args]);
      assert.match(r.stderr, note, `${command}: ${r.stderr}`);
    }
    const check = await leapfrog(['check-migrations', ...args, '--format', 'json']);
    assert.equal(check.exitCode, 1, check.stdout);
    const databases = (JSON.parse(check.stdout) as { checks: { check: string; result: string; details: string }[] }).checks.find((c) => c.check === 'Databases')!;
    assert.equal(databases.result, 'Warning');
    assert.match(databases.details, /svc cell1 \(svc_cell1\): not yet on the default server \(the chain puts it on server cell1, which the command line does not give: --db cell1=URL\): r1\/svc\/2\.cell1 would create it there/);
    // Given, nothing is said.
    const b = sqliteServer(path.join(dir, 'b'));
    const given = await leapfrog(['plan', ...args, '--db', `cell1=${b.db}`]);
    assert.equal(given.exitCode, 0, given.stderr);
    assert.doesNotMatch(given.stderr, /does not give/);
    const run = await leapfrog(['run', ...args]);
    assert.equal(run.exitCode, 0, run.stderr);
    assert.match(run.stderr, note);
  });

  test('rehearse --from reads one server: it says which databases the chain puts on other servers, and whether the copy has them', async () => {
    const dir = tempDir('cells-from');
    const file = writeChain(dir, chainDoc({ api: 'svc_api', cell0: 'svc_cell0', cell1: 'svc_cell1' }, path.join(dir, 'wrong')));
    const a = sqliteServer(path.join(dir, 'a'));
    for (const n of ['svc_api', 'svc_cell0']) {
      await a.exec(n, "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY); INSERT INTO alembic_version VALUES ('r0'); CREATE TABLE work (id INTEGER NOT NULL PRIMARY KEY, done INTEGER NOT NULL); CREATE TABLE marks (cell VARCHAR(64) NOT NULL, url VARCHAR(512) NOT NULL);");
    }
    const rehearse = () => leapfrog(['rehearse', '--chain', file, '--from', a.db, '--state-dir', path.join(dir, 'state'), '--cache-dir', CACHE]);
    const absent = await rehearse();
    assert.equal(absent.exitCode, 0, absent.stderr);
    assert.match(absent.stderr, /--from sqlite:\S+: the chain puts svc_cell1 on server cell1, and --from reads one server: svc_cell1 is not on sqlite:\S+, so the rehearsal has no copy of it\. To rehearse every server's databases, pass all their \.sqlite3 files as --dump FILE\.\.\./);
    assert.equal(await a.exists('svc_cell1'), false, 'nothing created on the source');
    await a.exec('svc_cell1', "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY); INSERT INTO alembic_version VALUES ('r0');");
    const present = await rehearse();
    assert.match(present.stderr, /svc_cell1 is copied from sqlite:\S+; if server cell1 is another server, that is not its copy/);
  });
}, ['sqlite']);
