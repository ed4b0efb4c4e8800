import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parseDocument } from 'yaml';
import { loadEnv } from '../src/chain/load.js';
import { quickParse } from '../src/chain/source.js';
import { LeapfrogError } from '../src/errors.js';

/**
 * Chain and env files are read by js-yaml first and by `yaml` only when
 * js-yaml could disagree (src/chain/source.ts). These hold the two to one
 * meaning: whatever js-yaml returns is what `yaml` returns, and anything
 * `yaml` rejects or reads differently goes to `yaml`.
 */

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** What `yaml` makes of a file, as source.ts reads it: the value, or its first error. */
function reference(text: string): { data: unknown } | { error: string } {
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) return { error: doc.errors[0]!.message };
  try {
    return { data: doc.toJS({ maxAliasCount: 100 }) };
  } catch (err) {
    return { error: (err as Error).message };
  }
}

// Scalars the YAML 1.2 core schema resolves (and some it leaves as strings), keys, block and flow
// styles, and documents either parser rejects.
const SNIPPETS = [
  '', '# only a comment', '---', 'a:', 'a: ~', 'a: null', 'a: Null', 'a: NULL', 'a: nULL',
  'a: true', 'a: True', 'a: TRUE', 'a: tRue', 'a: yes', 'a: no', 'a: on', 'a: off', 'a: y',
  'a: 0', 'a: -0', 'a: +12', 'a: 012', 'a: 0o17', 'a: 0o8', 'a: 0x1F', 'a: 0X1F', 'a: 0b101', 'a: 1_000',
  'a: 9007199254740993', 'a: 100000000000000000000', 'a: 1.0', 'a: 5.', 'a: .5', 'a: -.5', 'a: 1e3', 'a: 1E3',
  'a: 1.5e-3', 'a: 0.1e+5', 'a: 1e', 'a: 0x', 'a: 0o', 'a: .inf', 'a: -.Inf', 'a: +.INF', 'a: .NaN', 'a: .nan',
  'a: 2001-12-14', 'a: 2001-12-14T21:59:43.10-05:00', 'a: 12:30:00', 'a: 1:20', 'a: 0.0.1',
  'a: "\\x41\\u00e9\\N\\t"', "a: 'it''s'", 'a: "x\\\n  y"', 'a: "multi\n  line"', 'a: plain\n  more\n\n  text',
  'a: |\n  x\n   y\n\n', 'a: |-\n  x\n', 'a: |+\n  x\n\n', 'a: >\n  x\n  y\n\n  z\n', 'a: >-\n  x\n\n', 'a: |2\n   x\n',
  'a: 1 # c', 'a: 1#c', 'a: "#c"', 'a: b#c', 'a: [1, 2]', 'a: [1, 2,]', 'a: []', 'a: {}', 'a: {b: c, d: [e]}',
  '{a: [1, 2], b: {c: d}}', '- a\n- - b\n  - c', '-\n  a: 1\n-\n  b: 2', '[a, b]', '"just a string"', '42',
  'a:\n  - b: 1\n    c: 2\n  - d', 'key with spaces: v', '"quoted key": v', "'single': v", '1: a', '~: a', 'null: a',
  'true: a', '1.5: a', '.inf: a', '[a]: b', '{a: b}: c', '? a\n: b', '? [a, b]\n: c', '__proto__: 1', 'constructor: 1',
  'a: 1\na: 2', '1: a\n"1": b', 'a: 1\n"a": 2', 'a: &x 1\nb: *x', 'a: &x 1', 'a: *x', '<<: {a: 1}', 'a:\n  <<: {b: 1}\n  c: 2',
  'a: !!str 12', 'a: !!int "12"', 'a: !!float 1', 'a: !!bool "true"', 'a: !!null ""', 'a: !!binary aGVsbG8=',
  'a: !foo x', '!!map {a: 1}', 'a: "x != y"', 'a: SELECT 1 WHERE x != 0', '%YAML 1.1\n---\na: yes', '%YAML 1.2\n---\na: 1',
  '%TAG ! tag:example.com,2000:\n---\na: 1', '---\na: 1\n---\nb: 2', 'a: 1\n...\n', '--- |\n  text', 'a: "x" y',
  '\ta: 1', 'a:\n\t- 1', 'a: -', 'a: @x', 'a: `x', 'a: x: y', 'a: {b}', 'a: [b: c]', 'a: {b: }', 'a: "unterminated',
  "a: 'unterminated", 'a:\n  b: 1\n c: 2', 'a:\n- 1\n- 2', `${'k'.repeat(1100)}: v`, 'a: "\\u0000"', 'a: \u00e9t\u00e9',
  '\ufeffa: 1', 'a:\t1', 'a: b\t', 'a: b # c\t', '"a":1', '{"a":1}', 'a: - b', 'a:b', 'http://x: y', 'a: b c: d', "a: 'x\n  y'",
  '- - - a', '? a', 'a: !', '&k a: b', 'a: \x07', 'a: "\x07"', 'a: x\u2028y', 'a: x\u0085y', 'a: "\\/"', 'a: 0x_1', 'a: 1__0',
  'a: 1.', 'a: +.5', 'a: -1e-0', 'a: 0o-1', 'a: 00', 'a: -0x1', 'a: 1,000', 'a: "null"', '"null": a', '"": a', ': a', 'a:\n  ? b\n  : c',
  'x:\n  - &a 1\n  - 2', 'a: >\n\n  x\n', 'a: |\n  \n  x', 'a: |1\n  x', 'a: b\n...\nc: d', '--- # c\na: 1', 'a: [b, {c: d}, [e]]',
  'a: 1\r\nb: 2\r\n', 'a: |\r\n  x\r\n', 'a: [1, [2, [3, [4]]]]', '{"json": [1, 2.5, true, null, "s"]}',
];

test('js-yaml reads every snippet as yaml does, or leaves it to yaml', () => {
  const deferred: string[] = [];
  for (const text of SNIPPETS) {
    const quick = quickParse(text);
    const ref = reference(text);
    if (quick === undefined) {
      deferred.push(text);
      continue;
    }
    assert.ok('data' in ref, `js-yaml read ${JSON.stringify(text)} but yaml rejects it: ${'error' in ref ? ref.error : ''}`);
    assert.deepEqual(quick.data, ref.data, `js-yaml and yaml disagree on ${JSON.stringify(text)}`);
  }
  // The guards are not vacuous: these must reach yaml, and plain documents must not.
  for (const text of ['', 'a: &x 1\nb: *x', 'a: !!float 1', '%YAML 1.1\n---\na: yes', 'a: 1\na: 2', '1: a\n"1": b', '\ta: 1']) {
    assert.ok(deferred.includes(text), `${JSON.stringify(text)} should be left to yaml`);
  }
  for (const text of ['a: 1', 'a: "x != y"', 'a: |\n  x\n   y\n\n', '{a: [1, 2], b: {c: d}}']) assert.ok(!deferred.includes(text), `${JSON.stringify(text)} should be read by js-yaml`);
});

test("the project's own chain, env and fixture files read the same by both", () => {
  const files = execFileSync('git', ['ls-files', '*.yaml', '*.yml'], { cwd: ROOT, encoding: 'utf8' }).trim().split('\n').filter(Boolean);
  assert.ok(files.length >= 10, `only ${files.length} YAML files found`);
  let quick = 0;
  for (const f of files) {
    const text = readFileSync(path.join(ROOT, f), 'utf8');
    const q = quickParse(text);
    const ref = reference(text);
    if (q === undefined) continue;
    quick++;
    assert.ok('data' in ref, `${f}: js-yaml read it but yaml rejects it`);
    assert.deepEqual(q.data, ref.data, `${f}: js-yaml and yaml disagree`);
  }
  assert.ok(quick >= files.length - 2, `only ${quick} of ${files.length} files took the fast path`);
});

test('a problem in a file js-yaml read is still located by line and column', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'leapfrog-yaml-fast-'));
  const text = 'env: e1\nsource: { file: x.tar.gz, sha256: nothex }\npath: [bin]\nvars: {}\n';
  assert.ok(quickParse(text), 'the env file should take the fast path');
  writeFileSync(path.join(dir, 'e1.yaml'), text);
  try {
    loadEnv(dir, 'e1');
    assert.fail('expected an input error');
  } catch (err) {
    assert.ok(err instanceof LeapfrogError, String(err));
    assert.match(err.details.join('\n'), /e1\.yaml:2:\d+: source\.sha256: .*64 lowercase hex digits/);
  }
});
