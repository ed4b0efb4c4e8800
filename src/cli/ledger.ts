import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { LeapfrogError } from '../errors.js';
import { Ledger } from '../ledger/ledger.js';
import { listRuns, runJson, runsJson, runsText, runText } from '../report/ledger.js';
import { rehearsalRuns } from '../ledger/rehearsals.js';
import { exportEvidence, importEvidence } from '../ledger/transfer.js';
import type { Io } from './io.js';
import { formatOf, stateDirOf, str, type Args } from './options.js';
import { commandLine, stateFlags } from '../state-dir.js';

/** `leapfrog ledger [runs | show [RUN]]`: the history, read only (a missing ledger is not created). */
export async function handler(args: Args, io: Io): Promise<void> {
  const stateDir = stateDirOf(args);
  const runs = commandLine(['ledger', 'runs', ...stateFlags(stateDir)]);
  const json = formatOf(args) === 'json';
  const ledger = Ledger.openForReading(stateDir);
  const file = path.join(path.resolve(stateDir), 'ledger.sqlite3');
  try {
    const action = str(args, 'action') ?? 'runs';
    if (action === 'export') return exportTo(ledger, file, str(args, 'run'), io);
    if (action === 'import') return importFrom(stateDir, str(args, 'run'), io);
    if (action === 'runs') {
      const listed = listRuns(file, ledger?.runs() ?? [], rehearsalRuns(stateDir));
      io.out(json ? JSON.stringify(runsJson(file, listed), null, 2) : runsText(file, listed, (id, dir) => commandLine(['ledger', 'show', String(id), ...stateFlags(dir)])));
      return;
    }
    const raw = str(args, 'run');
    if (raw !== undefined && !/^\d+$/.test(raw)) throw new LeapfrogError('input', `ledger show ${raw}: expected a run id (a number; \`${runs}\` lists them)`);
    const id = raw !== undefined ? Number(raw) : ledger?.runs(1)[0]?.id;
    if (id === undefined || !ledger) throw new LeapfrogError('input', `no runs recorded in ${file}`);
    const run = ledger.run(id);
    if (!run) throw new LeapfrogError('input', `run ${id} is not in ${file}; \`${runs}\` lists the runs`);
    const record = { run, steps: ledger.steps(id), checkpoints: ledger.checkpoints(id), snapshots: ledger.snapshots(id), rollbacks: ledger.rollbacks(run.chain, run.target), predictions: ledger.predictions(id) };
    io.out(json ? JSON.stringify(runJson(record), null, 2) : runText(record));
  } finally {
    ledger?.close();
  }
}

/** `ledger export [FILE]`: the evidence of every sync step this ledger saw, as JSON (stdout without FILE). */
function exportTo(ledger: Ledger | undefined, file: string, out: string | undefined, io: Io): void {
  if (!ledger) throw new LeapfrogError('input', `no ledger at ${file}: nothing to export`);
  const origin = (stepRow: number | null): string => {
    const run = stepRow === null ? undefined : ledger.runOfStep(stepRow);
    return run ? `${run.kind} ${run.id} on ${run.target} (host ${run.host})` : 'a ledger';
  };
  const text = JSON.stringify(exportEvidence(ledger.evidence, origin), null, 2);
  if (out === undefined) io.out(text);
  else {
    writeFileSync(out, text + '\n');
    io.err(`leapfrog: wrote the evidence of ${ledger.evidence.all().length} step records to ${out}`);
  }
}

/** `ledger import FILE`: add another ledger's evidence (a rehearsal's) to this one. */
function importFrom(stateDir: string, from: string | undefined, io: Io): void {
  if (from === undefined) throw new LeapfrogError('input', 'ledger import: which file? `leapfrog ledger import FILE`, FILE written by `leapfrog ledger export`');
  let text: string;
  try {
    text = readFileSync(from, 'utf8');
  } catch (err) {
    throw new LeapfrogError('input', `ledger import ${from}: cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  const ledger = Ledger.open(stateDir);
  try {
    const { rows, added } = importEvidence(ledger.evidence, from, text);
    io.out(`imported ${added} evidence rows from ${from} into ${ledger.file}${rows > added ? ` (${rows - added} already there)` : ''}`);
  } finally {
    ledger.close();
  }
}
