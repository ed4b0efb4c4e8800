import type { RollbackChoice, RollbackResult } from '../core/rollback.js';
import type { CheckpointRow } from '../ledger/records.js';
import { snapshotVersion } from '../ledger/records.js';
import { describePlacement, type Placement } from '../database/placement.js';
import { formatBytes } from './format.js';
import { finalVersionsText, formatStoredVersion, versionsJson } from './render.js';

/** A rollback (or its --dry-run) for people and as `leapfrog.rollback/v1`. */

const point = (r: RollbackResult) => (r.to === 'start' ? 'to before the first hop' : `to checkpoint ${r.to}${r.checkpoint ? ` (${r.checkpoint.project}@${r.checkpoint.release})` : ''}`);

const hop = (c: CheckpointRow) => `${c.id} ${c.project}@${c.release} (run ${c.run_id}, ${c.created_at})`;

/** What the rollback discards, one line: the checkpoints (hops) after the point. */
export function lostText(lost: readonly CheckpointRow[]): string {
  if (lost.length === 0) return 'Nothing recorded after that point is lost.';
  return `Lost: the ${lost.length === 1 ? 'checkpoint' : `${lost.length} checkpoints`} after it, whose hops will run again: ${lost.map(hop).join(', ')}.`;
}

/**
 * The question a terminal gets before a rollback: the point's time and
 * versions (each database's, as its snapshot recorded it) and what is lost.
 */
export function rollbackPreviewText(c: RollbackChoice): string {
  const when = c.checkpoint ? `recorded ${c.checkpoint.created_at} by run ${c.checkpoint.run_id}` : `snapshots taken from ${c.snapshots.map((s) => s.created_at).sort()[0] ?? '(none)'}`;
  const lines = [`Roll back ${c.to === 'start' ? 'to before the first hop' : `to checkpoint ${c.to}${c.checkpoint ? ` (${c.checkpoint.project}@${c.checkpoint.release})` : ''}`}, ${when}. Each database goes back to:`];
  for (const s of c.snapshots) lines.push(`  ${s.database}: ${s.file === null ? 'did not exist then (dropped)' : s.version === null ? 'version not recorded' : `version ${formatStoredVersion(snapshotVersion(s))}`} (snapshot ${s.id}, ${s.created_at})`);
  for (const d of c.drop) lines.push(`  ${d}: did not exist then (dropped)`);
  for (const d of c.unchanged) lines.push(`  ${d}: left as it is (no step changed it since)`);
  lines.push(lostText(c.lost));
  return lines.join('\n');
}

export function rollbackText(r: RollbackResult): string {
  const dry = r.rollbackId === undefined;
  const lines = [dry ? `Would roll back ${point(r)}; nothing was changed (--dry-run). It would restore, each after verifying its sha256 (verified just now):` : `Rolled back ${point(r)} (rollback ${r.rollbackId}); restored, each after verifying its sha256:`];
  for (const s of r.snapshots) {
    const version = s.version === null ? 'version not recorded' : `version ${formatStoredVersion(snapshotVersion(s))}`;
    lines.push(`  ${s.database}: ${s.file === null ? `did not exist then: ${dry ? 'would be dropped' : 'dropped'}` : `snapshot ${s.id} (run ${s.run_id}, before ${s.before_step}), ${s.file}, ${formatBytes(s.bytes ?? 0)}, ${version}`}`);
  }
  for (const d of r.drop) lines.push(`  ${d}: did not exist then: ${dry ? 'would be dropped' : 'dropped'}`);
  for (const d of r.unchanged) lines.push(`  ${d}: left as it is (no step changed it since that point)`);
  lines.push(dry ? lostText(r.lost) : lostText(r.lost).replace(/^Lost: /, 'Undone: '));
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
    dropped: r.drop,
    unchanged: r.unchanged,
    versions: versionsJson(r.versions),
    lost: r.lost.map((c) => ({ checkpoint: c.id, project: c.project, release: c.release, run: c.run_id, at: c.created_at })),
  };
}
