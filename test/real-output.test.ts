/**
 * Real output, through a real run: a step whose tool fails as nova-manage
 * does (oslo.log's colour codes on every line, a Python traceback, then 30
 * lines of the SQL that failed) keeps the error lines and the last lines in
 * its failure tail, with no ANSI code, in the run's error, the ledger,
 * `ledger show` and the rehearsal report's failures; and its argv, which
 * carries a quoted SQL argument, is shown so that a shell given the shown
 * text gets the same argv back.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { failuresFromLedger } from '../src/rehearse/report.js';
import type { StepRow } from '../src/ledger/ledger.js';
import { describeTargets, fakeCloud, leapfrog, ledgerRows, tempDir } from './helpers.js';

const SQL = "SELECT COUNT(*) FROM instances WHERE host = 'compute-1' AND deleted = 0";
const ERROR = `sqlalchemy.exc.OperationalError: (pymysql.err.OperationalError) (1050, "Table 'instances' already exists")`;

// Twenty frames: the exception line is far from the Traceback line that opens the block, and 30 lines of SQL follow it.
const TOOL = `#!/bin/sh
e=$(printf '\\033')
for i in 1 2 3 4 5 6 7 8; do echo "\${e}[00;32m2026-11-30 05:18:53.0$i 26239 INFO alembic.runtime.migration [-] Context impl MySQLImpl.\${e}[00m"; done
echo "\${e}[01;31m2026-11-30 05:18:53.101 26239 ERROR nova.db.migration [-] initial migration failed\${e}[00m"
echo "An error has occurred:"
echo "Traceback (most recent call last):"
for i in $(seq 1 20); do echo "  File \\"/usr/lib/python3/dist-packages/frame_$i.py\\", line $i, in call_$i"; echo "    return call_$((i + 1))()"; done
cat <<'END'
${ERROR}
END
echo "[SQL: "
echo "CREATE TABLE instances ("
for i in $(seq 1 28); do echo "	column_$i VARCHAR(255) NULL, "; done
echo ")ENGINE=InnoDB CHARSET=utf8]"
exit 1
`;

const argvOf = (shown: string): string[] => execFileSync('sh', ['-c', `printf '%s\\0' ${shown}`]).toString().split('\0').slice(0, -1);

describeTargets('a failing tool\'s real output', (kind) => {
  test('the tail keeps the traceback, the exception line and the last lines, without ANSI codes, and the argv shown pastes back as the same argv', async () => {
    const cloud = await fakeCloud({ kind, instances: 1 });
    try {
      const tool = path.join(tempDir('tool'), 'compute-manage-like');
      writeFileSync(tool, TOOL, { mode: 0o755 });
      const chain = cloud.variant('fakecloud-real-output', (c) => {
        c.releases[0].steps.unshift({ project: 'compute', env: 'compute-kilo', name: 'fails as nova does', check: ['sh', tool, '--config-file', "{{ config['compute.conf'] }}", 'db', 'execute', SQL] });
      });
      const run = await leapfrog(['run', ...cloud.args(chain)]);
      assert.notEqual(run.exitCode, 0, run.stderr);
      assert.ok(!run.stderr.includes('\u001b'), 'no ANSI code in the run\'s error');
      assert.ok(run.stderr.includes(ERROR), run.stderr);

      const [row] = ledgerRows(cloud.state, "SELECT * FROM steps WHERE status = 'failed'") as StepRow[];
      assert.ok(row, 'the failed step is in the ledger');
      const tail = row.log_tail!.split('\n');
      assert.ok(!row.log_tail!.includes('\u001b'), 'no ANSI code in the ledger');
      assert.ok(tail.includes('2026-11-30 05:18:53.101 26239 ERROR nova.db.migration [-] initial migration failed'), row.log_tail!);
      assert.ok(tail.includes('Traceback (most recent call last):'));
      assert.ok(tail.includes(ERROR), 'the exception line, 30 lines of SQL before the end');
      assert.equal(tail.at(-1), ')ENGINE=InnoDB CHARSET=utf8]', 'the last line');
      assert.ok(tail.includes('…') && tail.length < 75, 'lines between were left out');
      const log = readFileSync(row.log_path!, 'utf8');
      assert.ok(log.includes(ERROR), 'the log keeps everything');

      // The argv as shown in the step's log and by `ledger show`: a shell given it gets the recorded argv back.
      const argv = JSON.parse(row.command) as string[];
      assert.equal(argv.at(-1), SQL);
      const header = /^# \S+ \$ (.*)$/m.exec(log)![1]!;
      assert.deepEqual(argvOf(header), argv);
      const show = await leapfrog(['ledger', 'show', String(row.run_id), '--state-dir', cloud.state]);
      assert.equal(show.exitCode, 0, show.stderr);
      assert.ok(!show.stdout.includes('\u001b'));
      assert.ok(show.stdout.includes(ERROR));
      assert.deepEqual(argvOf(/^\$ (.*)$/m.exec(show.stdout)![1]!), argv);

      // The rehearsal report's failures are read from the same ledger rows.
      const failures = failuresFromLedger([row]);
      assert.deepEqual(argvOf(failures[0]!.command), argv);
      assert.ok(failures[0]!.logTail.includes(ERROR));
      assert.ok(!JSON.stringify(failures).includes('\u001b'));
    } finally {
      await cloud.dispose();
    }
  });
});
