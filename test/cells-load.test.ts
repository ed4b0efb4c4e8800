/**
 * Per-cell steps as the loader expands them and the pure planner plans them:
 * no database, plain chains (test/cells.test.ts runs them for real).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { loadChain } from '../src/chain/load.js';
import { plan } from '../src/chain/plan.js';
import { argvModel, checkTemplate, configModel, renderArgv, renderConfig } from '../src/chain/template.js';
import type { DatabaseAddress } from '../src/database/url.js';
import { findStep } from '../src/check/rules.js';

const CHAIN = `chain: nova-cells
projects:
  nova:
    databases: { api: nova_api, cell0: nova_cell0, cell1: nova }
    servers: { cell1: cell1 }
    cells: [cell0, cell1]
    version: { api: sqlalchemy-migrate, cell0: sqlalchemy-migrate, cell1: sqlalchemy-migrate }
    start: { api: 60, cell0: 390, cell1: 390 }
    config:
      nova.conf: |
        [api_database]
        connection = {{ db.api.url }}
        [database]
        connection = {{ cell.db.url }}
      api.conf: |
        [api_database]
        connection = {{ db.api.url }}
releases:
  - release: zed
    env: nova-zed
    steps:
      - { project: nova, sync: [nova-manage, --config-file, "{{ config['api.conf'] }}", api_db, sync], expect: { api: 70 } }
      - { project: nova, per-cell: true, name: db sync, sync: [nova-manage, --config-file, "{{ config['nova.conf'] }}", db, sync], expect: { cell: 402 } }
      - project: nova
        per-cell: [cell1]
        data: [nova-manage, --config-file, "{{ config['nova.conf'] }}", db, online_data_migrations, --max-count, "50", "{{ cell.name }}"]
        repeat-while-exit: 1
        needed-when: { database: cell, query: "SELECT COUNT(*) FROM instances WHERE x IS NULL" }
        touches: [cell.instances, api.flavors]
`;

function load(text = CHAIN) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'lf-cells-load-'));
  const file = path.join(dir, 'nova-cells.yaml');
  writeFileSync(file, text);
  return loadChain(file);
}

test('per-cell steps become one step per cell at load, cell resolved in expect, needed-when and touches', () => {
  const chain = load();
  const nova = chain.projects.nova!;
  assert.deepEqual(nova.servers, { cell1: 'cell1' });
  assert.deepEqual(nova.cells, ['cell0', 'cell1']);
  assert.deepEqual(nova.cellConfig, ['nova.conf']);
  const steps = chain.releases[0]!.steps;
  assert.deepEqual(steps.map((s) => s.id), ['zed/nova/1', 'zed/nova/2.cell0', 'zed/nova/2.cell1', 'zed/nova/3.cell1']);
  assert.deepEqual(steps.map((s) => s.cell), [undefined, 'cell0', 'cell1', 'cell1']);
  assert.deepEqual(steps[1]!.expect, { cell0: { kind: 'number', value: 402 } });
  assert.deepEqual(steps[2]!.expect, { cell1: { kind: 'number', value: 402 } });
  assert.equal(steps[2]!.name, 'db sync');
  assert.deepEqual(steps[3]!.neededWhen, { database: 'cell1', query: 'SELECT COUNT(*) FROM instances WHERE x IS NULL' });
  assert.deepEqual(steps[3]!.touches, [{ database: 'cell1', table: 'instances' }, { database: 'api', table: 'flavors' }]);
  assert.equal(steps[3]!.repeatWhileExit, 1);
});

test('the planner plans each cell on its own: a cell already synced is done, the other still to run', () => {
  const chain = load();
  const num = (value: number) => ({ kind: 'number' as const, value });
  const p = plan({ chain, versions: { nova: { api: num(70), cell0: num(402), cell1: num(390) } }, neededCounts: {}, ledgerDone: new Set() });
  assert.deepEqual(p.steps.map((s) => s.step.id), ['zed/nova/2.cell1', 'zed/nova/3.cell1']);
  const done = plan({ chain, versions: { nova: { api: num(70), cell0: num(402), cell1: num(402) } }, neededCounts: { 'zed/nova/3.cell1': 0 }, ledgerDone: new Set() });
  assert.deepEqual(done.steps, []);
});

test("templates: cell.name and cell.db.* in a per-cell step, without the password on argv; each cell's config rendering", () => {
  const chain = load();
  const nova = chain.projects.nova!;
  const address = (name: string, host: string): DatabaseAddress =>
    ({ url: `mysql+pymysql://nova:s3cret@${host}:3306/${name}`, redactedUrl: `mysql+pymysql://nova:****@${host}:3306/${name}`, name, host, port: '3306', user: 'nova', password: 's3cret', socket: '', path: '' });
  const addresses = { api: address('nova_api', 'db-main'), cell0: address('nova_cell0', 'db-main'), cell1: address('nova', 'db-cell1') };
  assert.match(renderConfig(chain, nova, 'nova.conf', addresses, 'cell1'), /\[database\]\nconnection = mysql\+pymysql:\/\/nova:s3cret@db-cell1:3306\/nova\n/);
  assert.match(renderConfig(chain, nova, 'nova.conf', addresses, 'cell0'), /connection = mysql\+pymysql:\/\/nova:s3cret@db-main:3306\/nova_cell0\n/);
  const step = chain.releases[0]!.steps[3]!;
  const argv = renderArgv(chain, step, addresses, { 'nova.conf': '/state/nova@cell1/nova.conf' }, '/empty');
  assert.deepEqual(argv.slice(2), ['/state/nova@cell1/nova.conf', 'db', 'online_data_migrations', '--max-count', '50', 'cell1']);
  assert.deepEqual(checkTemplate('{{ cell.db.host }} {{ cell.name }}', argvModel(nova, true)), []);
  assert.match(checkTemplate('{{ cell.db.password }}', argvModel(nova, true))[0]!.message, /password is not available to command lines/);
  assert.deepEqual(checkTemplate('{{ cell.db.password }}', configModel(nova, true)), []);
  assert.match(checkTemplate('{{ cell.name }}', argvModel(nova, false))[0]!.message, /cell is not something templates can use/);
});

test("a blocker's fixed-by naming a per-cell step (by name or id without the cell) is that step's copy for the blocker's database", () => {
  const chain = load();
  assert.equal(findStep(chain, 'nova', 'db sync', 'cell1')?.id, 'zed/nova/2.cell1');
  assert.equal(findStep(chain, 'nova', 'zed/nova/2', 'cell1')?.id, 'zed/nova/2.cell1');
  assert.equal(findStep(chain, 'nova', 'zed/nova/2', 'api')?.id, 'zed/nova/2.cell0', 'not a cell: the first copy');
  assert.equal(findStep(chain, 'nova', 'zed/nova/2.cell0', 'cell1')?.id, 'zed/nova/2.cell0', 'an exact id is that step');
  assert.equal(findStep(chain, 'nova', 'zed/nova/1', 'cell1')?.id, 'zed/nova/1');
});

test("a per-cell step's needed-when and touches must say which database: left to the default (the project's first, api), every cell's copy would count api's rows, and a cell whose rows still need the migration would be skipped as not needed", () => {
  const refused = (from: string, to: string, expected: RegExp) => {
    assert.ok(CHAIN.includes(from), from);
    assert.throws(() => load(CHAIN.replace(from, to)), (err: Error & { details?: string[] }) => {
      const text = [err.message, ...(err.details ?? [])].join('\n');
      assert.match(text, expected);
      return true;
    });
  };
  refused(
    'needed-when: { database: cell, query: "SELECT COUNT(*) FROM instances WHERE x IS NULL" }',
    'needed-when: "SELECT COUNT(*) FROM instances WHERE x IS NULL"',
    /nova-cells\.yaml:\d+:\d+: releases\[0\]\.steps\[2\]\.needed-when: a per-cell step runs once per cell: name the database its query counts in, \{ database: cell, query: … \} for each cell's own \(or \{ database: api, query: … \}\)/,
  );
  refused(
    'needed-when: { database: cell, query: "SELECT COUNT(*) FROM instances WHERE x IS NULL" }',
    'needed-when: { query: "SELECT COUNT(*) FROM instances WHERE x IS NULL" }',
    /releases\[0\]\.steps\[2\]\.needed-when: a per-cell step runs once per cell: name the database/,
  );
  refused('touches: [cell.instances, api.flavors]', 'touches: [instances, api.flavors]', /releases\[0\]\.steps\[2\]\.touches\[0\]: a per-cell step runs once per cell: write cell\.instances for each cell's own table \(or api\.instances\)/);
  // Naming the first database itself stays possible.
  const chain = load(CHAIN.replace('{ database: cell, query:', '{ database: api, query:'));
  assert.deepEqual(chain.releases[0]!.steps[3]!.neededWhen?.database, 'api');
});
