/**
 * What the next run does with an orphaned step's own output file
 * (src/sandbox/step-output.ts), on real files: the dead leapfrog's partial
 * copy replaced by everything the step wrote, masked, streamed in chunks (a
 * secret split across two chunks included), ending with the note.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { registerSecret } from '../src/report/secrets.js';
import { recoverOrphanOutput } from '../src/sandbox/step-output.js';
import { tempDir } from './helpers.js';

test('an orphan\'s output replaces the partial copy, masked across chunk boundaries, then the note; the raw file is gone', () => {
  const dir = tempDir('step-output');
  const log = path.join(dir, '001-kilo-compute-1.log');
  const earlier = '# an earlier batch\nbatch 1 done\n';
  const header = '# 2026-11-30T00:00:00.000Z $ compute-manage db sync\n';
  // What the dead leapfrog had copied (cut short mid-line) after the header.
  writeFileSync(log, `${earlier}${header}Running upgrade 280 -> 28`);
  const secret = 's3cret-Pass';
  registerSecret(secret);
  // The secret straddles the first 64 KiB read of the raw file.
  const marker = `leapfrog raw step output; log offset ${Buffer.byteLength(earlier + header)}\n`;
  const before = `${marker}Running upgrade 280 -> 281\n`;
  const filler = 'x'.repeat(64 * 1024 - 4 - Buffer.byteLength(before) - 'url=mysql://nova:'.length - 1) + '\n';
  assert.equal(Buffer.byteLength(before + filler + 'url=mysql://nova:'), 64 * 1024 - 4, 'the secret begins 4 bytes before the end of the first read');
  const body = `Running upgrade 280 -> 281\n${filler}url=mysql://nova:${secret}@db/nova\n${'Running upgrade 281 -> 282\n'.repeat(5000)}last line without newline`;
  writeFileSync(`${log}.out`, marker + body);
  assert.equal(recoverOrphanOutput(log, 'leapfrog (run 1) died'), true);
  const text = readFileSync(log, 'utf8');
  assert.ok(text.startsWith(earlier + header + 'Running upgrade 280 -> 281\n'), 'the partial copy is replaced, what came before it kept');
  assert.ok(!text.includes(secret), 'the secret is masked, although split across two reads');
  assert.ok(text.includes('url=mysql://nova:****@db/nova\n'));
  assert.match(text, /last line without newline\n# \S+ leapfrog \(run 1\) died\n$/);
  assert.equal(text.match(/Running upgrade 281 -> 282/g)?.length, 5000);
  assert.equal(existsSync(`${log}.out`), false);
  assert.equal(recoverOrphanOutput(log, 'again'), false, 'nothing left to recover');
});
