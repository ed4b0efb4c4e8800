import { LeapfrogError } from '../errors.js';
import type { SnapshotFile } from './digest.js';
import type { TargetSession } from './session.js';

export type { SnapshotFile } from './digest.js';
export { fileSha256 } from './digest.js';

export interface SnapshotOptions {
  /** gzip level, 1 (fastest) to 9. */
  level: number;
}

/** Take one database's snapshot into `dir`. A failure names the database and what to do; the run has not started any step yet. */
export async function snapshotDatabase(session: TargetSession, name: string, dir: string, opts: SnapshotOptions): Promise<SnapshotFile> {
  try {
    return await session.snapshot(name, dir, opts.level);
  } catch (err) {
    // Already explained (a snapshot directory that cannot be made, a dump tool's refusal): say which database, keep its kind.
    if (err instanceof LeapfrogError) throw new LeapfrogError(err.kind, err.message.startsWith('snapshot of database') ? err.message : `snapshot of database ${name}: ${err.message}`, { cause: err, details: err.details });
    const code = (err as NodeJS.ErrnoException).code;
    throw new LeapfrogError(
      'unexpected',
      `snapshot of database ${name} into ${dir} failed: ${(err as Error).message}${code === 'ENOSPC' ? ' (free space in the state directory, or run with --snapshot none if you have your own backup)' : ''}`,
      { cause: err },
    );
  }
}
