/** The chain format's `blockers:` key: loaded, and its mistakes named by file, line and field. */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { loadChain } from '../src/chain/load.js';
import { LeapfrogError } from '../src/errors.js';

const chainText = (blockers: string) => `chain: tiny
projects:
  compute:
    databases: { main: compute, api: compute_api }
    version: { main: sqlalchemy-migrate, api: sqlalchemy-migrate }
    start: { main: 254 }
    blockers:
${blockers}
releases:
  - release: mitaka
    env: compute-mitaka
    steps:
      - { project: compute, name: online data migrations, data: [compute-manage, db, online_data_migrations] }
  - release: newton
    env: compute-newton
    steps:
      - { project: compute, name: online data migrations, data: [compute-manage, db, online_data_migrations] }
`;

function write(text: string): string {
  const f = path.join(mkdtempSync(path.join(os.tmpdir(), 'lf-chain-')), 'tiny.yaml');
  writeFileSync(f, text);
  return f;
}

test('blockers load with their database defaulting to the project\'s first, and fixed-by kept as written', () => {
  const c = loadChain(write(chainText(`      - { name: nodes, query: "SELECT COUNT(*) FROM compute_nodes WHERE uuid IS NULL", message: newton 330 refuses, fixed-by: mitaka/compute/1 }
      - { name: api flavors, database: api, query: "SELECT 0", message: m }`)));
  assert.deepEqual(c.projects.compute!.blockers, [
    { name: 'nodes', database: 'main', query: 'SELECT COUNT(*) FROM compute_nodes WHERE uuid IS NULL', message: 'newton 330 refuses', fixedBy: 'mitaka/compute/1' },
    { name: 'api flavors', database: 'api', query: 'SELECT 0', message: 'm', fixedBy: undefined },
  ]);
});

test('blocker mistakes are reported together, each with its line and field: unknown key, missing query, unknown database, ambiguous fixed-by, duplicate name', () => {
  const f = write(chainText(`      - { name: a, query: "SELECT 0", message: m, fixed_by: x }
      - { name: b, message: m }
      - { name: c, database: nova, query: "SELECT 0", message: m }
      - { name: d, query: "SELECT 0", message: m, fixed-by: online data migrations }
      - { name: d, query: "SELECT 0", message: m }`));
  let err: unknown;
  try {
    loadChain(f);
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof LeapfrogError);
  const all = err.details.join('\n');
  assert.match(all, /tiny\.yaml:8:\d+: projects\.compute\.blockers\[0\]\.fixed_by: unknown key "fixed_by"/);
  assert.match(all, /tiny\.yaml:9:\d+: projects\.compute\.blockers\[1\]: missing required key "query"/);
  // Schema problems stop loading before the semantic checks: fix them, then the rest is reported.
  const f2 = write(chainText(`      - { name: c, database: nova, query: "SELECT 0", message: m }
      - { name: d, query: "SELECT 0", message: m, fixed-by: online data migrations }
      - { name: d, query: "SELECT 0", message: m }`));
  let err2: unknown;
  try {
    loadChain(f2);
  } catch (e) {
    err2 = e;
  }
  assert.ok(err2 instanceof LeapfrogError);
  const all2 = err2.details.join('\n');
  assert.match(all2, /tiny\.yaml:8:\d+: projects\.compute\.blockers\[0\]\.database: "nova" is not a database of project compute \(main, api\)/);
  assert.match(all2, /tiny\.yaml:9:\d+: projects\.compute\.blockers\[1\]\.fixed-by: "online data migrations" names 2 steps \(mitaka\/compute\/1, newton\/compute\/1\); use the step id/);
  assert.match(all2, /tiny\.yaml:10:\d+: projects\.compute\.blockers\[2\]\.name: blocker "d" appears twice/);
});
