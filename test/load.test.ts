import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { loadChain, loadEnv } from '../src/chain/load.js';
import { LeapfrogError } from '../src/errors.js';

function write(dir: string, name: string, text: string): string {
  const f = path.join(dir, name);
  mkdirSync(path.dirname(f), { recursive: true });
  writeFileSync(f, text);
  return f;
}

function problems(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof LeapfrogError, String(err));
    assert.equal(err.kind, 'input');
    return [err.message, ...err.details];
  }
  assert.fail('expected an input error');
}

const good = `chain: tiny
projects:
  compute:
    databases: { main: compute }
    version: { main: sqlalchemy-migrate }
    start: { main: 254 }
    config:
      compute.conf: |
        [database]
        connection = {{ db.main.url }}
releases:
  - release: kilo
    env: compute-kilo
    steps:
      - { project: compute, sync: [compute-manage, db, sync, --version, 280], expect: { main: 280 } }
`;

test('a good chain loads, with step ids, defaults and a checksum', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'lf-load-'));
  const c = loadChain(write(dir, 'chains/tiny.yaml', good));
  assert.equal(c.name, 'tiny');
  assert.equal(c.envDir, path.join(dir, 'envs'));
  const s = c.releases[0]!.steps[0]!;
  assert.equal(s.id, 'kilo/compute/1');
  assert.deepEqual(s.command, ['compute-manage', 'db', 'sync', '--version', '280']);
  assert.deepEqual(s.expect, { main: { kind: 'number', value: 280 } });
  assert.equal(s.env, 'compute-kilo');
  assert.match(c.sha256, /^[0-9a-f]{64}$/);
});

test('JSON chains are accepted too', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'lf-load-'));
  const json = JSON.stringify({
    chain: 'tiny',
    projects: { image: { databases: { main: 'image' }, version: { main: 'alembic' }, start: { main: 'juno' } } },
    releases: [{ release: 'kilo', env: 'image-kilo', steps: [{ project: 'image', sync: ['image-manage', 'db', 'sync'], expect: { main: 'kilo' } }] }],
  });
  const c = loadChain(write(dir, 'chains/tiny.json', json));
  assert.deepEqual(c.releases[0]!.steps[0]!.expect, { main: { kind: 'heads', heads: ['kilo'] } });
});

test('every mistake in a chain is reported at once, each with file, line, column and field', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'lf-load-'));
  const bad = good
    .replace('    start: { main: 254 }\n', '    start: { main: juno }\n')
    .replace('expect: { main: 280 } }', 'expects: { main: 280 } }')
    + `  - release: liberty
    steps:
      - { project: compte, sync: [x], expect: { main: 1 } }
      - project: compute
        env: compute-liberty
        data: [compute-manage, db, online_data_migrations]
        max-runs: 0
        after: [image@kilo]
`;
  const f = write(dir, 'chains/bad.yaml', bad);
  const [message, ...lines] = problems(() => loadChain(f));
  assert.match(message ?? "", /bad\.yaml: \d+ problems in this chain/);
  const text = lines.join('\n');
  // Schema errors: unknown key and out-of-range value, each at its own line.
  assert.match(text, /bad\.yaml:15:\d+: releases\[0\]\.steps\[0\]\.expects: unknown key "expects"/);
  assert.match(text, /bad\.yaml:22:19: releases\[1\]\.steps\[1\]\.max-runs: must be >= 1/);
  assert.equal(lines.length, 2, 'semantic checks wait until the schema passes, so no noise from the same mistakes: ' + text);

  const f2 = write(dir, 'chains/bad2.yaml', bad.replace('expects:', 'expect:').replace('max-runs: 0', 'max-runs: 3'));
  const text2 = problems(() => loadChain(f2)).join('\n');
  assert.match(text2, /bad2\.yaml:6:\d+: projects\.compute\.start\.main: must be a whole number/);
  assert.match(text2, /bad2\.yaml:18:20: releases\[1\]\.steps\[0\]\.project: unknown project "compte"/);
  assert.match(text2, /bad2\.yaml:23:17: releases\[1\]\.steps\[1\]\.after\[0\]: unknown project "image"/);
});

test('a sync step without expect, and a step with two commands, are refused', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'lf-load-'));
  const f = write(dir, 'chains/c.yaml', good.replace(', expect: { main: 280 } }', ', data: [y] }'));
  const text = problems(() => loadChain(f)).join('\n');
  assert.match(text, /c\.yaml:15:\d+: releases\[0\]\.steps\[0\]: a step has exactly one of sync, data or check, not sync and data/);
});

test('YAML syntax errors name the line', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'lf-load-'));
  const f = write(dir, 'chains/s.yaml', 'chain: x\nprojects: {\n');
  assert.match(problems(() => loadChain(f)).join('\n'), /s\.yaml:\d+:\d+: /);
});

test('a missing chain file says so', () => {
  assert.match(problems(() => loadChain('/nonexistent/chain.yaml'))[0]!, /cannot read this chain \(no such file\)/);
});

test('env files: schema, name agreement and path safety', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'lf-env-'));
  write(dir, 'ok.yaml', `env: ok\nsource: { file: ok.tar.gz, sha256: ${'a'.repeat(64)} }\npath: [bin]\nvars: { PYTHONPATH: "{{ root }}/lib" }\n`);
  const e = loadEnv(dir, 'ok');
  assert.equal(e.source.location, path.join(dir, 'ok.tar.gz'));
  assert.deepEqual(e.path, ['bin']);

  write(dir, 'bad.yaml', `env: other\nsource: { file: x.tar.gz, sha256: ABC }\npath: [../bin]\ncolour: blue\n`);
  const text = problems(() => loadEnv(dir, 'bad')).join('\n');
  assert.match(text, /bad\.yaml:2:\d+: source\.sha256: "ABC" is not valid here \(expected 64 lowercase hex digits\)/);
  assert.match(text, /bad\.yaml:4:1: colour: unknown key "colour"/);

  write(dir, 'bad2.yaml', `env: other\nsource: { file: x.tar.gz, sha256: ${'b'.repeat(64)} }\npath: [../bin]\n`);
  const text2 = problems(() => loadEnv(dir, 'bad2')).join('\n');
  assert.match(text2, /bad2\.yaml:1:\d+: env: says "other" but the file is named for "bad2"/);
  assert.match(text2, /bad2\.yaml:3:\d+: path\[0\]: must be a directory inside the env/);

  assert.match(problems(() => loadEnv(dir, "missing"))[0] ?? "", /env "missing": no missing\.yaml in /);
});

test('touches: a table of the first database or DATABASE.TABLE; a database the project lacks is named with its line and field', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'lf-load-'));
  const withTouches = (list: string) => good.replace('expect: { main: 280 } }', `expect: { main: 280 }, touches: ${list} }`);
  const c = loadChain(write(dir, 'chains/tiny.yaml', withTouches('[instances, main.compute_nodes]')));
  assert.deepEqual(c.releases[0]!.steps[0]!.touches, [{ database: 'main', table: 'instances' }, { database: 'main', table: 'compute_nodes' }]);
  assert.equal(loadChain(write(dir, 'chains/tiny.yaml', good)).releases[0]!.steps[0]!.touches, undefined);
  const unknown = problems(() => loadChain(write(dir, 'chains/bad.yaml', withTouches('[instances, api.flavors]')))).join('\n');
  assert.match(unknown, /bad\.yaml:15:\d+: releases\[0\]\.steps\[0\]\.touches\[1\]: "api" is not a database of project compute \(main\)/);
  const notATable = problems(() => loadChain(write(dir, 'chains/bad2.yaml', withTouches('["x;y"]')))).join('\n');
  assert.match(notATable, /bad2\.yaml:15:\d+: releases\[0\]\.steps\[0\]\.touches\[0\]: /);
});
