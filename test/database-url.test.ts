/** Target URLs and MySQL option files: pure parsing, every rule the README states. */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { parseOptionFile, readOptionFile } from '../src/database/option-file.js';
import { describeTarget, parseTargetUrl } from '../src/database/url.js';
import { tempDir } from './helpers.js';

describe('option files', () => {
  test('the [client] group as the mysql clients read it', () => {
    const text = [
      '# a comment',
      '; another',
      '[mysqld]',
      'user = mysql',
      'password = not-this-one',
      '[client]',
      'user = "lf admin"',
      "password = 'p#s\\'s \\\\ \\s' # quoted: # is part of the value",
      'host=db1.example   # trailing comment',
      'port = 3307',
      'default-character-set = utf8mb4',
      'compress',
      '[Client]',
      'socket = /run/mysqld/mysqld.sock',
    ].join('\n');
    assert.deepEqual(parseOptionFile(text, 'my.cnf'), { user: 'lf admin', password: "p#s's \\  ", host: 'db1.example', port: 3307, socket: '/run/mysqld/mysqld.sock' });
  });

  test('mistakes name the file and line, and never echo a password', () => {
    assert.throws(() => parseOptionFile('user = x', 'a.cnf'), /a\.cnf:1: an option before any \[group\] header/);
    assert.throws(() => parseOptionFile('[client]\nport = 33o6', 'a.cnf'), /a\.cnf:2: port must be a number from 1 to 65535, not "33o6"/);
    assert.throws(() => parseOptionFile('[client]\npassword = "secret', 'a.cnf'), (e: Error) => /a\.cnf:2: password: the value's quote is never closed/.test(e.message) && !e.message.includes('secret'));
    assert.throws(() => parseOptionFile('[client]\npassword = "sec"ret', 'a.cnf'), (e: Error) => /text after the closing quote/.test(e.message) && !e.message.includes('ret'));
    assert.throws(() => parseOptionFile('!include /etc/other.cnf', 'a.cnf'), /a\.cnf:1: !include is not supported/);
    assert.throws(() => readOptionFile('/nonexistent/my.cnf'), /--defaults-file \/nonexistent\/my\.cnf: cannot read this option file \(no such file\)/);
  });

  test('a real file', () => {
    const f = path.join(tempDir('cnf'), 'my.cnf');
    writeFileSync(f, '[client]\r\nuser=u\r\npassword=pw\r\n');
    assert.deepEqual(readOptionFile(f), { user: 'u', password: 'pw' });
  });
});

describe('target URLs', () => {
  const file = { user: 'fu', password: 'fp', host: 'fh', port: 7, socket: '/s' };

  test('the URL wins, then LEAPFROG_DB_PASSWORD, then the option file', () => {
    assert.deepEqual(parseTargetUrl('mysql://a:b%40c@h:1', 'env', file), { kind: 'mysql', user: 'a', password: 'b@c', host: 'h', port: 1, socket: undefined });
    assert.deepEqual(parseTargetUrl('mysql://a@h', 'env', file), { kind: 'mysql', user: 'a', password: 'env', host: 'h', port: 3306, socket: undefined });
    assert.deepEqual(parseTargetUrl('mysql://', undefined, file), { kind: 'mysql', user: 'fu', password: 'fp', host: 'fh', port: 7, socket: undefined });
    assert.deepEqual(parseTargetUrl('mysql://', undefined, { ...file, host: 'localhost' }), { kind: 'mysql', user: 'fu', password: 'fp', host: 'localhost', port: 7, socket: '/s' });
    assert.deepEqual(parseTargetUrl('mysql://u@localhost?socket=/run/x.sock'), { kind: 'mysql', user: 'u', password: undefined, host: 'localhost', port: 3306, socket: '/run/x.sock' });
  });

  test('the password is never part of the target as shown or keyed in the ledger', () => {
    const t = parseTargetUrl('mysql://a:hunter2@h:1');
    assert.equal(describeTarget(t), 'mysql://a@h:1');
    assert.equal(describeTarget(parseTargetUrl('mysql://a@h:1', 'other')), describeTarget(t));
  });

  test('bad URLs are input errors that redact the password', () => {
    assert.throws(() => parseTargetUrl('mysql://a:hunter2@h/nova'), (e: Error) => /drop "\/nova"/.test(e.message) && !e.message.includes('hunter2'));
    assert.throws(() => parseTargetUrl('mysql://a:hunter2@h?sock=/x'), (e: Error) => /unknown parameter "sock"/.test(e.message) && !e.message.includes('hunter2') && e.message.includes('****'));
  });
});
