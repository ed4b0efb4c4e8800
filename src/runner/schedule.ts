import type { PreparedStep } from '../chain/argv.js';
import type { ProvisionedEnv } from '../envs/store.js';
import { LeapfrogError } from '../errors.js';
import { checkpoint, takeSnapshot } from './checkpoint.js';
import { asRunError, hopKey, interrupted, type Dirs, type RunContext } from './context.js';
import { runOne } from './step.js';
import type { PlannedSnapshot } from './snapshot-plan.js';

export async function schedule(ctx: RunContext, runId: number, prepared: readonly PreparedStep[], envs: Map<string, ProvisionedEnv>, dirs: Dirs, runDirectory: string, hopSnapshots: readonly PlannedSnapshot[]): Promise<LeapfrogError | undefined> {
  // Snapshots before a hop are taken by its project's lane as the hop starts: that lane is waiting, so its databases are still.
  const before = new Map(hopSnapshots.map((s) => [s.beforeStep, s.databases]));
  const lanes = new Map<string, PreparedStep[]>();
  for (const p of prepared) (lanes.get(p.step.project) ?? lanes.set(p.step.project, []).get(p.step.project)!).push(p);
  const remaining = new Map<string, number>();
  for (const p of prepared) remaining.set(hopKey(p), (remaining.get(hopKey(p)) ?? 0) + 1);
  const order = new Map(prepared.map((p, i) => [p, i]));

  const running = new Map<string, Promise<void>>();
  let failure: LeapfrogError | undefined;
  let seq = 0;
  const limit = Math.max(1, ctx.parallel);

  const ready = (p: PreparedStep) => p.step.after.every((a) => (remaining.get(`${a.project}@${a.release}`) ?? 0) === 0);

  for (;;) {
    if (failure === undefined && ctx.signal?.aborted) failure = interrupted();
    if (failure === undefined) {
      const heads = [...lanes.entries()]
        .filter(([project, steps]) => steps.length > 0 && !running.has(project))
        .map(([, steps]) => steps[0]!)
        .filter(ready)
        .sort((a, b) => order.get(a)! - order.get(b)!);
      for (const p of heads) {
        if (running.size >= limit) break;
        lanes.get(p.step.project)!.shift();
        const n = ++seq;
        running.set(
          p.step.project,
          (async () => {
            const databases = before.get(p.step.id);
            if (databases) await takeSnapshot(ctx, runId, runDirectory, databases, p.step.id);
            await runOne(ctx, runId, p, n, envs.get(p.step.env)!, dirs);
            const key = hopKey(p);
            const left = remaining.get(key)! - 1;
            remaining.set(key, left);
            if (left === 0) await checkpoint(ctx, runId, p.step.project, p.step.release);
          })()
            .catch((err: unknown) => {
              failure ??= asRunError(err, ctx.layout.stateDir);
            })
            .finally(() => running.delete(p.step.project)),
        );
      }
    }
    if (running.size === 0) break;
    await Promise.race(running.values());
  }
  if (failure === undefined && [...lanes.values()].some((s) => s.length > 0)) {
    failure = new LeapfrogError('unexpected', 'steps were left waiting on after: edges that never completed');
  }
  return failure;
}
