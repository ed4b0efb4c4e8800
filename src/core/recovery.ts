import type { Chain, StepDef, Version } from '../chain/types.js';
import { describeTables, versionOrder } from '../chain/position.js';
import { compareToExpectation, formatVersion, versionToJson } from '../chain/version.js';
import { diffShapes, fingerprint, type SchemaShape } from '../database/fingerprint.js';
import type { TargetSession } from '../database/session.js';
import { stampStatements, type StampStatement } from '../database/stamp.js';
import type { Ledger } from '../ledger/ledger.js';
import { completedAttempts, type EvidenceRow } from '../ledger/evidence.js';
import type { LedgerReader, StepRow } from '../ledger/ledger.js';
import { hint, type HintFlags } from './layout.js';
import { describePoint, restorablePoints, restorePoints, type RestorePoint } from './rollback.js';

/**
 * What a sync step that a run died in (or was stopped in) left behind, per
 * database it declares: the state found now set against the step's evidence
 * (ledger/evidence.ts): its own "before", recorded as its child started, and
 * the "after" of the same step of the same chain in an earlier run, a
 * rehearsal, or a ledger imported from one.
 *
 * MySQL and MariaDB commit each DDL statement on its own, so a migration
 * killed between two ALTERs is half-applied while its version row still
 * says it never ran (nova's zed migration adds a column to a table and to
 * its shadow table). Running it again fails ("Duplicate column name"), or
 * worse. So a step is only re-run when nothing of it is there; what the
 * evidence cannot explain is refused, saying exactly what is there.
 * The state of the art this replaces: golang-migrate's "dirty database,
 * fix and force" (https://github.com/golang-migrate/migrate/blob/master/FAQ.md),
 * Flyway's repair that fixes only its own table.
 */

export type Verdict =
  /** The version says the step's work is done: nothing to recover. */
  | { kind: 'done' }
  /** The schema is as the step found it: it may run again. */
  | { kind: 'not-started' }
  /**
   * The version moved inside the step on a target whose DDL is transactional (SQLite): each migration
   * committed with its version; the tool resumes. Or (`failed`) the step failed after its tool moved it.
   */
  | { kind: 'resumable'; failed?: true }
  /** The schema equals the evidence after this step, but the version was never written. */
  | { kind: 'applied'; source: string; stamp?: StampStatement[] | { why: string } }
  /** Some of the step's work is there, some is missing (compared with the evidence after it). */
  | { kind: 'partial'; there: string[]; missing: string[]; source: string }
  /** Something changed since the step started, and no evidence says what the step would leave. */
  | { kind: 'unknown'; there: string[]; why: string }
  /** The database is partly created (tables, no version) and the chain declares `partial: rerun`: the step runs again over them. */
  | { kind: 'rerun'; tables: readonly string[] };

export interface Recovery {
  step: StepRow;
  project: string;
  /** The chain's logical database, and its name on the target. */
  database: string;
  name: string;
  version: Version;
  verdict: Verdict;
}

interface State {
  version: unknown;
  sha256: string | null;
  shape: SchemaShape | null;
}

const stateOf = (r: EvidenceRow): State => ({ version: JSON.parse(r.version) as unknown, sha256: r.sha256, shape: r.shape === null ? null : (JSON.parse(r.shape) as SchemaShape) });
const sameVersion = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
const EMPTY: SchemaShape = { tables: {} };

/**
 * The verdict for one database, pure: its state before the step (its own
 * evidence), now, whether its version is already the step's, the "after"
 * of earlier attempts of the step that started from the same schema, and
 * whether the target's DDL is transactional.
 */
export function classify(i: { before: State | undefined; childStarted: boolean; now: State; atExpectation: boolean; afters: readonly { state: State; source: string }[]; transactionalDdl: boolean; failed?: boolean; created?: boolean }): Verdict {
  if (i.atExpectation) return { kind: 'done' };
  if (!i.before) {
    // A ledger from before evidence: on SQLite each migration commits with its version, so the tool resumes where it stopped.
    // (A failed step from then: re-run as before evidence existed.)
    if (!i.childStarted || i.failed) return { kind: 'not-started' };
    return i.transactionalDdl ? { kind: 'resumable' } : { kind: 'unknown', there: [], why: 'no evidence of the schema before it started (a ledger from an older leapfrog)' };
  }
  const versionMoved = !sameVersion(i.before.version, i.now.version);
  if (!versionMoved && i.now.sha256 === i.before.sha256) return { kind: 'not-started' };
  // A database leapfrog creates (create:) that the step found empty and that is gone now: dropped
  // after a crash inside its first migration, as an operator does with a database nothing uses yet.
  // The step's start is there again: the run creates the database and runs the step.
  if (!versionMoved && i.created && i.now.sha256 === null && Object.keys(i.before.shape?.tables ?? {}).length === 0) return { kind: 'not-started' };
  const full = i.afters.find((a) => a.state.sha256 === i.now.sha256);
  if (full) return { kind: 'applied', source: full.source };
  if (versionMoved && i.transactionalDdl) return { kind: 'resumable' };
  // A step that failed on its own after its tool moved the version: the tool resumes from the version it
  // wrote, as after a failure fixed by hand (a blocker's rows). Only work below an unmoved version is
  // certainly a migration's half (nova's 334 between its two ALTERs when the server died): refused below.
  if (versionMoved && i.failed) return { kind: 'resumable', failed: true };
  const there = diffShapes(i.before.shape ?? EMPTY, i.now.shape ?? EMPTY);
  if (versionMoved) there.unshift(`version ${formatStored(i.before.version)} -> ${formatStored(i.now.version)}`);
  const after = i.afters.at(-1);
  if (!after) return { kind: 'unknown', there, why: 'no evidence of what this step leaves when it completes (no earlier run or rehearsal of it in this ledger; `leapfrog ledger import` brings a rehearsal\'s)' };
  return { kind: 'partial', there, missing: diffShapes(i.now.shape ?? EMPTY, after.state.shape ?? EMPTY).map(missingLine), source: after.source };
}

const formatStored = (v: unknown): string => (typeof v === 'object' && v !== null ? JSON.stringify(v) : String(v));

/** diffShapes(now, after) says what the step would still add: say it as what is missing. */
function missingLine(line: string): string {
  return line.replace(/ added$/, '').replace(/^(.*) removed$/, '$1 (still there; the step removes it)').replace(/^(.*) changed to (.*)$/, '$1 (the step changes it to $2)');
}

/** The chain's sync step with this id, if any. */
function syncStep(chain: Chain, id: string): StepDef | undefined {
  for (const r of chain.releases) for (const s of r.steps) if (s.id === id && s.kind === 'sync') return s;
  return undefined;
}

/** Every in-flight sync step's databases, each judged against the evidence. */
export async function assessInFlight(ledger: LedgerReader | undefined, chain: Chain, session: TargetSession, target: string, versions: Readonly<Record<string, Readonly<Record<string, Version>>>>): Promise<Recovery[]> {
  if (!ledger) return [];
  const out: Recovery[] = [];
  const transactionalDdl = session.placement.default.kind === 'sqlite';
  // Failed syncs too: a step that failed (its server died, its connection was killed) may have left a half.
  const rows = [...ledger.inFlightSteps(chain.name, target), ...ledger.inFlightSteps(chain.name, target, ['failed'])];
  for (const row of rows) {
    const failed = row.status === 'failed';
    const step = syncStep(chain, row.step_id);
    if (!step) continue;
    const project = chain.projects[step.project]!;
    const own = ledger.evidence.ofStepRow(row.id);
    const ownAttempt = own[0]?.attempt;
    const attempts = completedAttempts(ledger.evidence.ofStep(chain.name, step.id)).filter((a) => a.attempt !== ownAttempt);
    for (const [db, expected] of Object.entries(step.expect)) {
      const name = project.databases[db]!;
      const version = versions[project.name]?.[db] ?? { kind: 'absent' };
      if (version.kind === 'partial') {
        // A first migration stopped part-way: the planner refuses it as "partly created", naming its tables (one
        // refusal, not two), unless the chain declares that the step runs again over them.
        if (project.partial?.[db] === 'rerun') out.push({ step: row, project: project.name, database: db, name, version, verdict: { kind: 'rerun', tables: version.tables } });
        continue;
      }
      const f = await fingerprint(session, name);
      const now: State = { version: versionToJson(version), sha256: f?.sha256 ?? null, shape: f?.shape ?? null };
      const beforeRow = own.find((r) => r.phase === 'before' && r.database === db);
      const before = beforeRow ? stateOf(beforeRow) : undefined;
      // Only an "after" that started where this attempt started says what this attempt would leave.
      const afters = attempts.flatMap((a) => {
        const b = a.before.get(db);
        const x = a.after.get(db);
        return b && x && (!before || b.sha256 === before.sha256) ? [{ state: stateOf(x), source: x.source === 'local' ? `${x.run_kind} of step row ${x.step_row}` : x.source }] : [];
      });
      const verdict = classify({
        before,
        childStarted: row.pid !== null,
        now,
        atExpectation: compareToExpectation(version, expected, versionOrder(chain, project, db)) === 'equal',
        afters,
        transactionalDdl,
        failed,
        created: project.create?.[db] !== undefined,
      });
      // A failed step is only worth a word when it left something to refuse or to record.
      if (failed && verdict.kind !== 'partial' && verdict.kind !== 'unknown' && verdict.kind !== 'applied') continue;
      if (verdict.kind === 'applied') verdict.stamp = stampStatements(project.version[db]!, version, expected);
      out.push({ step: row, project: project.name, database: db, name, version, verdict });
    }
  }
  return out;
}

/** Verdicts that forbid running the step again: its work is (partly) there. */
export const blocking = (r: Recovery): boolean => r.verdict.kind === 'partial' || r.verdict.kind === 'unknown' || (r.verdict.kind === 'applied' && !Array.isArray(r.verdict.stamp));

/** Steps whose every declared database is done or applied with a version leapfrog can write: recorded as done without running again. */
export function recordable(recovery: readonly Recovery[]): Map<number, Recovery[]> {
  const by = new Map<number, Recovery[]>();
  for (const r of recovery) (by.get(r.step.id) ?? by.set(r.step.id, []).get(r.step.id)!).push(r);
  for (const [id, rs] of by) {
    const ok = rs.every((r) => r.verdict.kind === 'done' || (r.verdict.kind === 'applied' && Array.isArray(r.verdict.stamp))) && rs.some((r) => r.verdict.kind === 'applied');
    if (!ok) by.delete(id);
  }
  return by;
}

/**
 * Record as done the steps whose work the evidence proves complete: write
 * each database's version (stamp.ts), then the step row, so a crash between
 * the two leaves a version the next run reads as done. Returns notes.
 */
export async function recordApplied(ledger: Ledger, session: TargetSession, steps: ReadonlyMap<number, Recovery[]>): Promise<string[]> {
  const notes: string[] = [];
  for (const rs of steps.values()) {
    const step = rs[0]!.step;
    const stamped: string[] = [];
    for (const r of rs) {
      if (r.verdict.kind !== 'applied' || !Array.isArray(r.verdict.stamp)) continue;
      await session.stamp(r.name, r.verdict.stamp);
      stamped.push(`${r.project} ${r.database} from ${formatVersion(r.version)} (the schema equals the evidence after this step: ${r.verdict.source})`);
    }
    const text = `${step.step_id} (run ${step.run_id}) was fully applied but not recorded: recorded as done without running it again; version written for ${stamped.join(', ')}`;
    ledger.recordRecovered(step.id, text);
    notes.push(text);
  }
  return notes;
}

/** One line per database for people: "partial work of newton/compute/1 on compute main: …". */
export function describeRecovery(r: Recovery): string {
  const where = `${r.step.step_id} (run ${r.step.run_id}) on ${r.project} ${r.database} (${r.name}, version ${formatVersion(r.version)})`;
  const v = r.verdict;
  switch (v.kind) {
    case 'done':
      return `${where}: its version is the step's; done`;
    case 'not-started':
      return `${where}: not started (the schema is as the step found it); it runs again`;
    case 'resumable':
      return v.failed
        ? `${where}: failed after its tool moved the version; the tool resumes from there`
        : `${where}: stopped between two migrations, each committed with its version; it resumes from there`;
    case 'applied':
      return `${where}: fully applied but not recorded: the schema equals the evidence after this step (${v.source}), but the version was never written; ${v.stamp === undefined || Array.isArray(v.stamp) ? '`leapfrog run` records it without running the step again' : `leapfrog cannot write it: ${v.stamp.why}`}`;
    case 'partial':
      return `partial work of ${where}: ${v.there.join('; ') || 'nothing visible'}. Missing compared with the evidence after this step (${v.source}): ${v.missing.join('; ') || 'nothing'}`;
    case 'unknown':
      return `unknown state after ${where}: since the step started: ${v.there.join('; ') || 'details differ'}; ${v.why}`;
    case 'rerun':
      return `${where}: partly created (${describeTables(v.tables)}, no version); the chain declares partial: rerun, so the step runs again over them`;
  }
}

/**
 * The restore point to name for a step that died: the newest point
 * `rollback --to` can restore that comes before the step and puts each of
 * its databases back from a snapshot taken before it (with hop-syncs, the
 * one taken as its hop started).
 */
export function pointBefore(points: readonly RestorePoint[], blocked: readonly Recovery[]): RestorePoint | undefined {
  const first = Math.min(...blocked.map((r) => r.step.id));
  return points
    .filter((p) => (p.checkpoint?.after_step ?? 0) < first)
    .filter((p) => blocked.every((r) => p.resolution.unchanged.includes(r.name) || p.resolution.restore.some((s) => s.database === r.name && s.after_step < r.step.id)))
    .at(-1);
}

/** The refusal's message and options: what is there, and the two ways on. */
export function recoveryRefusal(ledger: LedgerReader, chain: Chain, places: HintFlags, target: string, blocked: readonly Recovery[]): { message: string; details: string[] } {
  const steps = [...new Set(blocked.map((r) => r.step.step_id))];
  const points = restorePoints(ledger, chain, target);
  const named = pointBefore(points, blocked);
  const others = restorablePoints(ledger, chain, target).filter((p) => !named || p !== describePoint(named));
  const applied = blocked.every((r) => r.verdict.kind === 'applied');
  const rollback = (to: string) => hint(places, ['rollback', '--to', to]);
  return {
    message: `${blocked.every((r) => r.step.status === 'failed') ? `${steps.join(', ')} failed` : `a run died inside ${steps.join(', ')}`} and left ${applied ? 'its work applied but its version unrecorded' : 'work that is not safe to run over'}: MySQL/MariaDB commit each DDL statement on its own, so running ${steps.length === 1 ? 'the step' : 'the steps'} again would repeat what is there; nothing was run.`,
    details: [
      ...blocked.map(describeRecovery),
      'Options:',
      named
        ? `  roll back to the restore point from before the step's hop: ${rollback(String(named.to))} (${describePoint(named)}: restores ${named.resolution.restore.map((x) => `snapshot ${x.id} of ${x.database}, taken before ${x.before_step}`).join('; ')}); then run again${others.length > 0 ? `. Other points: ${others.join(', ')}` : ''}`
        : others.length > 0
          ? `  roll back to a snapshot from before the step: ${rollback('ID')}, with ID one of ${others.join(', ')}; then run again`
          : '  roll back: no snapshot in this ledger holds a state from before the step (restore your own backup of these databases), then run again',
      applied
        ? '  or record the version by hand with the project\'s own tool (stamp it to the step\'s version), then run again'
        : '  or fix it by hand: finish the step\'s work (and its version) or undo what is there until the schema matches the evidence before or after the step, then run again',
    ],
  };
}

/**
 * For each partly created database the planner refuses (a first migration
 * stopped part-way), the restore point from before that migration, when the
 * ledger has one: the newest point `rollback --to` can restore that drops it
 * (it did not exist then) or restores it from a snapshot.
 */
export function partlyCreatedOptions(ledger: LedgerReader, chain: Chain, places: HintFlags, target: string, versions: Readonly<Record<string, Readonly<Record<string, Version>>>>): string[] {
  const partial = Object.values(chain.projects).flatMap((p) =>
    Object.entries(p.databases).flatMap(([db, name]) => (versions[p.name]?.[db]?.kind === 'partial' && p.partial?.[db] !== 'rerun' ? [name] : [])),
  );
  if (partial.length === 0) return [];
  const points = restorePoints(ledger, chain, target);
  return partial.flatMap((name) => {
    const p = points.filter((x) => x.resolution.drop.includes(name) || x.resolution.restore.some((s) => s.database === name)).at(-1);
    if (!p) return [];
    const does = [...p.resolution.drop.map((d) => `drops ${d}`), ...p.resolution.restore.map((x) => `restores snapshot ${x.id} of ${x.database}, taken before ${x.before_step}`)].join('; ');
    return [`${name}: the restore point from before its first migration: ${hint(places, ['rollback', '--to', String(p.to)])} (${describePoint(p)}: ${does}); then run again`];
  });
}
