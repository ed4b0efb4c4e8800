import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { Ledger, type RunRow } from './ledger.js';

/**
 * A rehearsal keeps a ledger of its own under STATE_DIR/rehearsals/<id>/
 * (src/rehearse/rehearse.ts), so nothing it records can be mistaken for the
 * real databases' history. Listing the history reads them beside the main one.
 */
export interface RehearsalRuns {
  /** The rehearsal's directory name (its start time and pid). */
  id: string;
  dir: string;
  ledger: string;
  runs: RunRow[];
}

/** Every readable rehearsal ledger under `stateDir`, newest first; a damaged one is skipped (it is no reason to fail a listing). */
export function rehearsalRuns(stateDir: string, limit = 50): RehearsalRuns[] {
  const root = path.join(path.resolve(stateDir), 'rehearsals');
  if (!existsSync(root)) return [];
  const out: RehearsalRuns[] = [];
  for (const id of readdirSync(root).sort().reverse()) {
    const dir = path.join(root, id);
    let ledger: Ledger | undefined;
    try {
      ledger = Ledger.openForReading(dir);
      if (ledger) out.push({ id, dir, ledger: ledger.file, runs: ledger.runs(limit) });
    } catch {
      continue;
    } finally {
      ledger?.close();
    }
  }
  return out;
}
