/**
 * `{{ empty_dir }}`: real tools read more than the config file they are
 * given (oslo.config reads every file of /etc/nova/nova.conf.d… unless
 * --config-dir names another directory), so a step points --config-dir at
 * a directory leapfrog keeps empty and read-only. A real run's step checks
 * what it finds there; the plan shows the same path.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { describeTargets, fakeCloud, leapfrog, ledgerRows } from './helpers.js';

// Exits 3 unless $1 is a directory, empty, mode 555; an earlier step's leftover would show here.
const LOOK = 'test -d "$1" || exit 3; test -z "$(ls -A "$1")" || exit 3; test "$(stat -c %a "$1")" = 555 || exit 3; echo "config dir $1 is empty"';

describeTargets('{{ empty_dir }}', (kind) => {
  test('names a directory that is empty and read-only when the step runs, the same in the plan and the run', async () => {
    const cloud = await fakeCloud({ kind, instances: 1 });
    try {
      const chain = cloud.variant('fakecloud-empty-dir', (c) => {
        c.releases[0].steps.unshift({ project: 'compute', env: 'compute-kilo', name: 'no host config', check: ['sh', '-c', LOOK, 'compute-manage', '{{ empty_dir }}'] });
      });
      const plan = await leapfrog(['plan', ...cloud.args(chain), '--until', 'kilo', '--format', 'json']);
      assert.equal(plan.exitCode, 0, plan.stderr);
      const argv = (JSON.parse(plan.stdout) as { steps: { id: string; command: string[] }[] }).steps.find((s) => s.id === 'kilo/compute/1')!.command;
      assert.match(argv.at(-1)!, /\/config\/fakecloud-juno-newton-[0-9a-f]{12}\/\.empty$/);
      const text = await leapfrog(['plan', ...cloud.args(chain), '--until', 'kilo']);
      assert.match(text.stdout, /compute-manage \$CONFIG\/\.empty\n/);
      const run = await leapfrog(['run', ...cloud.args(chain), '--until', 'kilo']);
      assert.equal(run.exitCode, 0, run.stderr);
      const [row] = ledgerRows(cloud.state, "SELECT command, status FROM steps WHERE step_id = 'kilo/compute/1'");
      assert.equal(JSON.parse(row!.command).at(-1), argv.at(-1));
      assert.equal(row!.status, 'succeeded');
    } finally {
      await cloud.dispose();
    }
  });
});
