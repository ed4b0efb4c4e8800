/**
 * What leapfrog keeps of a tool's output and how it shows a command: the
 * failure tail keeps the error lines real tools bury under SQL and
 * tracebacks (fixtures/outputs/nova-zed-db-sync-rerun.log is Debian nova
 * 26's `db sync` re-run on a half-applied revision, verbatim, ANSI resets
 * included), and an argv is shown so it can be pasted into a shell.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { shellQuote } from '../src/report/format.js';
import { failureTail, stripAnsi } from '../src/report/tail.js';
import { ROOT } from './helpers.js';

const NOVA = readFileSync(path.join(ROOT, 'fixtures', 'outputs', 'nova-zed-db-sync-rerun.log'), 'utf8').split('\n');

test("a failure tail of real nova output keeps the tracebacks' first lines and the last lines, with no ANSI codes", () => {
  assert.ok(NOVA.some((l) => l.includes('\u001b[00m')), 'the fixture carries oslo.log ANSI resets');
  const tail = failureTail(NOVA);
  assert.ok(tail.every((l) => !l.includes('\u001b')), 'no escape left');
  assert.ok(tail.includes('Traceback (most recent call last):'), tail.join('\n'));
  assert.ok(tail.some((l) => /Can't DROP INDEX `shadow_instance_extra_idx`/.test(l)), 'the error itself');
  const lastWords = stripAnsi(NOVA.filter((l) => l.trim() !== '').pop()!);
  assert.ok(tail.includes(lastWords), 'the last line of output is kept');
  assert.ok(tail.includes('…'), 'what was left out is marked');
  assert.ok(tail.length < NOVA.length);
});

test('a tail with no error line is the last lines only', () => {
  const lines = Array.from({ length: 50 }, (_, i) => `line ${i}`);
  assert.deepEqual(failureTail(lines), ['…', ...lines.slice(30)]);
  assert.deepEqual(failureTail(lines.slice(0, 5)), lines.slice(0, 5));
});

test('stripAnsi removes colour, cursor and title sequences and nothing else', () => {
  assert.equal(stripAnsi('\u001b[01;31mERROR\u001b[00m plain \u001b]0;title\u0007[x]'), 'ERROR plain [x]');
  // Hyperlinks (OSC 8, ST-terminated), cursor save/restore and an erase-line: what newer tools print on a terminal.
  assert.equal(stripAnsi('\u001b]8;;https://docs.openstack.org\u001b\\nova docs\u001b]8;;\u001b\\ \u001b7saved\u001b8\u001b[2K done'), 'nova docs saved done');
});

test('shellQuote: what it prints, a shell gives back as the same argv', () => {
  const argv = ['nova-manage', '--config-file', '/etc/nova/nova.conf', 'db', 'sync', "SELECT COUNT(*) FROM t WHERE name = 'x'", 'a b', '', "it's", '$HOME', '--opt=a;b', 'é'];
  const quoted = shellQuote(argv);
  const back = execFileSync('bash', ['-c', `for a in ${quoted}; do printf '%s\\0' "$a"; done`]).toString().split('\0').slice(0, -1);
  assert.deepEqual(back, argv);
  assert.equal(shellQuote(['db', 'sync', '--version', '290']), 'db sync --version 290', 'plain words stay plain');
});
