import type { RollbackResult } from '../core/rollback.js';
import { snapshotVersion } from '../ledger/records.js';
import { describePlacement, type Placement } from '../database/placement.js';
import { formatBytes } from './format.js';
import { finalVersionsText, formatStoredVersion, versionsJson } from './render.js';

/** A rollback (or its --dry-run) for people and as `leapfrog.rollback/v1`. */

const point = (r: RollbackResult) => (r.to === 'start' ? 'to before the first hop' : `to checkpoint ${r.to}${r.checkpoint ? ` (${r.checkpoint.project}@${r.checkpoint.release})` : ''}`);

export function rollbackText(r: RollbackResult): string {
  const dry = r.rollbackId === undefined;
  const lines = [dry ? `Would roll back ${point(r)}; nothing was changed (--dry-run). It would restore, each after verifying its sha256 (verified just now):` : `Rolled back ${point(r)} (rollback ${r.rollbackId}); restored, each after verifying its sha256:`];
  for (const s of r.snapshots) {
    const version = s.version === null ? 'version not recorded' : `version ${formatStoredVersion(snapshotVersion(s))}`;
    lines.push(`  ${s.database}: ${s.file === null ? `did not exist then: ${dry ? 'would be dropped' : 'dropped'}` : `snapshot ${s.id} (run ${s.run_id}, before ${s.before_step}), ${s.file}, ${formatBytes(s.bytes ?? 0)}, ${version}`}`);
  }
  lines.push(`Versions ${dry ? 'now (before any restore)' : 'now'}:\n${finalVersionsText(r.versions)}`);
  if (!dry) lines.push('The next run plans from these versions.');
  return lines.join('\n');
}

export function rollbackJson(ctx: { chain: { name: string }; target: Placement }, r: RollbackResult) {
  return {
    format: 'leapfrog.rollback/v1',
    chain: ctx.chain.name,
    target: describePlacement(ctx.target),
    dryRun: r.rollbackId === undefined,
    rollback: r.rollbackId ?? null,
    to: r.to,
    restored: r.snapshots.map((s) => ({ database: s.database, snapshot: s.id, takenBefore: s.before_step, run: s.run_id, file: s.file, bytes: s.bytes, sha256: s.sha256, version: snapshotVersion(s) ?? null })),
    versions: versionsJson(r.versions),
  };
}
