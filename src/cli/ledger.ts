import type { CommandModule } from 'yargs';
import { LeapfrogError } from '../errors.js';
import { withLedger } from '../ledger/ledger.js';
import { formatMs, formatStoredVersion, table } from '../report/render.js';
import { processIo, type Io } from './io.js';

interface LedgerArgs {
  'state-dir': string;
  format: 'text' | 'json';
  action: 'runs' | 'show' | undefined;
  run: number | undefined;
}


export async function ledgerCommand(args: LedgerArgs, io: Io = processIo): Promise<void> {
  await withLedger(args['state-dir'], async (ledger) => {
    if ((args.action ?? 'runs') === 'runs') {
      const runs = ledger.runs();
      if (args.format === 'json') {
        io.out(JSON.stringify({ format: 'leapfrog.ledger.runs/v1', ledger: ledger.file, runs }, null, 2));
        return;
      }
      if (runs.length === 0) {
        io.out(`No runs recorded in ${ledger.file}.`);
        return;
      }
      const t = table(['run', 'chain', 'target', 'status', 'started', 'duration']);
      for (const r of runs) {
        const ms = r.finished_at ? Date.parse(r.finished_at) - Date.parse(r.started_at) : undefined;
        t.push([String(r.id), r.chain, r.target, r.status, r.started_at.replace('T', ' ').slice(0, 19), ms === undefined ? '-' : formatMs(ms)]);
      }
      io.out(t.toString());
      return;
    }
    const id = args.run ?? ledger.runs(1)[0]?.id;
    if (id === undefined) throw new LeapfrogError('input', `no runs recorded in ${ledger.file}`);
    const run = ledger.run(id);
    if (!run) throw new LeapfrogError('input', `run ${id} is not in ${ledger.file}; \`leapfrog ledger runs\` lists the runs`);
    const steps = ledger.steps(id);
    const checkpoints = ledger.checkpoints(id);
    const snapshots = ledger.snapshots(id);
    const rollbacks = ledger.rollbacks(run.chain, run.target);
    if (args.format === 'json') {
      io.out(
        JSON.stringify(
          {
            format: 'leapfrog.ledger.run/v1',
            run,
            steps: steps.map((s) => ({ ...s, command: JSON.parse(s.command) as string[] })),
            checkpoints: checkpoints.map((c) => ({ ...c, versions: JSON.parse(c.versions) as unknown, fingerprints: JSON.parse(c.fingerprints) as unknown })),
            snapshots,
            rollbacks: rollbacks.map((b) => ({ ...b, snapshots: JSON.parse(b.snapshots) as number[] })),
          },
          null,
          2,
        ),
      );
      return;
    }
    const lines = [`Run ${run.id}: chain ${run.chain} on ${run.target}, ${run.status}, started ${run.started_at} on ${run.host} (pid ${run.pid})`];
    if (run.error) lines.push(`Error: ${run.error}`);
    for (const n of run.notes?.split('\n') ?? []) lines.push(`Note: ${n}`);
    const t = table(['step', 'kind', 'env', 'status', 'runs', 'exit', 'time']);
    for (const s of steps) t.push([s.step_id, s.kind, s.env, s.status, String(s.attempts), s.exit_code === null ? '-' : String(s.exit_code), s.duration_ms === null ? '-' : formatMs(s.duration_ms)]);
    lines.push(t.toString());
    for (const s of steps.filter((x) => x.status === 'failed' || x.status === 'interrupted' || x.status === 'started')) {
      lines.push(`\n${s.step_id} ${s.status}${s.error ? `: ${s.error}` : ''}`, `log: ${s.log_path}`, ...(s.log_tail ? s.log_tail.split('\n').map((l) => '  ' + l) : []));
    }
    if (checkpoints.length > 0) {
      const c = table(['id', 'checkpoint', 'versions', 'fingerprints']);
      for (const cp of checkpoints) {
        const fp = JSON.parse(cp.fingerprints) as Record<string, string | null>;
        c.push([
          String(cp.id),
          `${cp.project}@${cp.release}`,
          Object.entries(JSON.parse(cp.versions) as Record<string, unknown>).map(([db, v]) => `${db} ${formatStoredVersion(v)}`).join('\n'),
          Object.entries(fp).map(([db, h]) => `${db} ${h ? h.slice(0, 12) : '-'}`).join('\n'),
        ]);
      }
      lines.push('', c.toString());
    }
    if (snapshots.length > 0) {
      const sn = table(['snapshot', 'before step', 'database', 'size', 'sha256']);
      for (const x of snapshots) sn.push([String(x.id), x.before_step, x.database, x.file === null ? 'absent' : `${Math.ceil((x.bytes ?? 0) / 1024)} KiB`, x.sha256 ? x.sha256.slice(0, 12) : '-']);
      lines.push('', sn.toString());
    } else {
      lines.push('', `No snapshots in this run${run.snapshot === 'none' ? ' (--snapshot none)' : ''}.`);
    }
    for (const b of rollbacks) {
      lines.push(`Rollback ${b.id} ${b.to_checkpoint === 0 ? 'to before the first hop' : `to checkpoint ${b.to_checkpoint}`}: ${b.status}, ${b.started_at} on ${b.host}${b.error ? `: ${b.error}` : ''}`);
    }
    io.out(lines.join('\n'));
  });
}

export const ledgerModule: CommandModule<object, LedgerArgs> = {
  command: 'ledger [action] [run]',
  describe: 'history: `ledger runs` lists runs, `ledger show [RUN]` shows one run\'s steps, timings and checkpoints',
  builder: (y) =>
    y
      .positional('action', { choices: ['runs', 'show'] as const, describe: 'runs (default) or show' })
      .positional('run', { type: 'number', describe: 'run id for show (default: the latest)' })
      .option('state-dir', { type: 'string', default: './.leapfrog' })
      // Accepted everywhere so a window's scripts can pass it to every command; the ledger never uses the network.
      .option('offline', { type: 'boolean', default: false, describe: 'no network (the ledger never needs any)' })
      .option('format', { choices: ['text', 'json'] as const, default: 'text' as const }) as never,
  handler: (args) => ledgerCommand(args),
};
