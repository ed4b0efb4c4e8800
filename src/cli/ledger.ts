import path from 'node:path';
import { LeapfrogError } from '../errors.js';
import { Ledger } from '../ledger/ledger.js';
import { runJson, runsJson, runsText, runText } from '../report/ledger.js';
import type { Io } from './io.js';
import { formatOf, str, type Args } from './options.js';

/** `leapfrog ledger [runs | show [RUN]]`: the history, read only (a missing ledger is not created). */
export async function handler(args: Args, io: Io): Promise<void> {
  const stateDir = str(args, 'state-dir') ?? './.leapfrog';
  const json = formatOf(args) === 'json';
  const ledger = Ledger.openForReading(stateDir);
  const file = path.join(path.resolve(stateDir), 'ledger.sqlite3');
  try {
    if ((str(args, 'action') ?? 'runs') === 'runs') {
      const runs = ledger?.runs() ?? [];
      io.out(json ? JSON.stringify(runsJson(file, runs), null, 2) : runsText(file, runs));
      return;
    }
    const raw = str(args, 'run');
    if (raw !== undefined && !/^\d+$/.test(raw)) throw new LeapfrogError('input', `ledger show ${raw}: expected a run id (a number; \`leapfrog ledger runs\` lists them)`);
    const id = raw !== undefined ? Number(raw) : ledger?.runs(1)[0]?.id;
    if (id === undefined || !ledger) throw new LeapfrogError('input', `no runs recorded in ${file}`);
    const run = ledger.run(id);
    if (!run) throw new LeapfrogError('input', `run ${id} is not in ${file}; \`leapfrog ledger runs\` lists the runs`);
    const record = { run, steps: ledger.steps(id), checkpoints: ledger.checkpoints(id), snapshots: ledger.snapshots(id), rollbacks: ledger.rollbacks(run.chain, run.target) };
    io.out(json ? JSON.stringify(runJson(record), null, 2) : runText(record));
  } finally {
    ledger?.close();
  }
}
