import { createRequire } from 'node:module';
import type Table from 'cli-table3';
import type { Plan, PlannedStep } from '../chain/plan.js';
import type { Version } from '../chain/types.js';
import { formatVersion, versionToJson } from '../chain/version.js';
import type { RunResult } from '../runner/context.js';
import { hint, type HintFlags } from '../core/layout.js';
import { shellQuote } from './format.js';

/**
 * Plans and results as text (80-column friendly tables) and as JSON. The
 * JSON carries a `format` tag so scripts can rely on its shape.
 */

export const PLAN_FORMAT = 'leapfrog.plan/v1';
export const RUN_FORMAT = 'leapfrog.run/v1';

/** No rule between rows: long tables stay readable in a terminal. */
export const COMPACT = { mid: '', 'left-mid': '', 'mid-mid': '', 'right-mid': '' };

// cli-table3 (and its string-width) loads only when a table is drawn: `plan` draws none.
const require = createRequire(import.meta.url);

export function table(head: string[]): Table.Table {
  const Table = require('cli-table3') as typeof import('cli-table3');
  return new Table({ head, chars: COMPACT, style: { head: [], border: [] } });
}

export function versionsLine(versions: Readonly<Record<string, Version>>): string {
  return Object.entries(versions)
    .map(([db, v]) => `${db} ${formatVersion(v)}`)
    .join(', ');
}

export function versionsJson(all: Readonly<Record<string, Readonly<Record<string, Version>>>>): Record<string, Record<string, unknown>> {
  return Object.fromEntries(Object.entries(all).map(([p, dbs]) => [p, Object.fromEntries(Object.entries(dbs).map(([db, v]) => [db, versionToJson(v)]))]));
}

export function stepJson(p: PlannedStep & { argv?: readonly string[] }) {
  return {
    id: p.step.id,
    project: p.step.project,
    release: p.step.release,
    kind: p.step.kind,
    env: p.step.env,
    command: p.argv ?? p.step.command,
    reason: p.reason,
    conditional: p.conditional,
    ...(p.step.why ? { why: p.step.why } : {}),
    ...(p.step.after.length ? { after: p.step.after.map((a) => `${a.project}@${a.release}`) } : {}),
  };
}

export function planJson(plan: Plan, target: string, steps: readonly (PlannedStep & { argv: readonly string[] })[]) {
  return {
    format: PLAN_FORMAT,
    chain: plan.chain,
    target,
    until: plan.until ?? null,
    projects: plan.projects.map((p) => ({
      project: p.project,
      at: p.at ?? null,
      versions: versionsJson({ x: p.versions }).x,
      planned: p.steps.length,
      skipped: p.skipped.map((s) => ({ id: s.step.id, reason: s.reason })),
    })),
    steps: steps.map(stepJson),
  };
}

/** An argv as it is shown: shell-quoted so it can be pasted, the rendered-config directory as $CONFIG. */
export function shownArgv(argv: readonly string[], configDir?: string): string {
  return argv.map((a) => (configDir && a.startsWith(configDir + '/') ? '$CONFIG' + shellQuote([a.slice(configDir.length)]).replace(/^'\//, "/'") : shellQuote([a]))).join(' ');
}

/** One logical line of a plan: `indent` spaces, then text that a renderer may wrap with `hang` more spaces. */
export interface PlanLine {
  indent: number;
  text: string;
  hang: number;
}

/**
 * The plan for people, as lines: a summary per project, then per step its
 * id, why it runs, and its argv on a line of its own. Rendered config paths
 * are long and the same for every step of a project, so they are shown once,
 * as $CONFIG. `plan` prints the lines as they are (an argv stays one line to
 * paste); check-migrations wraps them to 80 columns.
 */
export function planLines(plan: Plan, target: string, steps: readonly (PlannedStep & { argv: readonly string[] })[], configDir?: string): PlanLine[] {
  const line = (indent: number, text: string, hang = 2): PlanLine => ({ indent, text, hang });
  const out: PlanLine[] = [line(0, `Plan: chain ${plan.chain} on ${target}${plan.until ? `, until ${plan.until}` : ''}`)];
  for (const p of plan.projects) {
    out.push(line(2, `${p.project}: ${p.at ? `at ${p.at}` : 'at the chain start'} (${versionsLine(p.versions)}); ${p.steps.length === 0 ? 'nothing to run' : `${p.steps.length} step${p.steps.length === 1 ? '' : 's'} to run`}`));
  }
  if (steps.length === 0) {
    out.push(line(0, ''), line(0, plan.until ? `Nothing to run: the target is already at ${plan.until} or beyond.` : `Nothing to run: the target is already at the end of chain ${plan.chain}.`));
    return out;
  }
  out.push(line(0, ''), line(0, `Steps (${steps.length}, in order; projects run side by side with --parallel):`));
  const width = String(steps.length).length;
  steps.forEach((s, i) => {
    out.push(line(2 + width - String(i + 1).length, `${i + 1}. ${s.step.id} ${s.step.kind} [${s.step.env}]${s.step.name ? ` ${s.step.name}` : ''}`, width + 2));
    out.push(line(width + 4, `${s.reason}${s.conditional ? ' (if its probe still says so)' : ''}`));
    out.push(line(width + 4, `$ ${shownArgv(s.argv, configDir)}`));
  });
  if (configDir && steps.some((s) => s.argv.some((a) => a.startsWith(configDir + '/')))) out.push(line(0, ''), line(0, `$CONFIG = ${configDir}`));
  return out;
}

export function planText(plan: Plan, target: string, steps: readonly (PlannedStep & { argv: readonly string[] })[], configDir?: string): string {
  return planLines(plan, target, steps, configDir)
    .map((l) => ' '.repeat(l.indent) + l.text)
    .join('\n');
}

/** One line per project, for the top of a run. */
export function planSummary(plan: Plan, target: string): string {
  const lines = [`Chain ${plan.chain} on ${target}: ${plan.steps.length} steps over ${plan.hops.length} hops${plan.until ? `, until ${plan.until}` : ''}`];
  for (const p of plan.projects) lines.push(`  ${p.project}: ${p.at ? `at ${p.at}` : 'at the chain start'} (${versionsLine(p.versions)}); ${p.steps.length} to run`);
  return lines.join('\n');
}

export function finalVersionsText(all: Readonly<Record<string, Readonly<Record<string, Version>>>>): string {
  const t = table(['project', 'database', 'version']);
  for (const [p, dbs] of Object.entries(all)) for (const [db, v] of Object.entries(dbs)) t.push([p, db, formatVersion(v)]);
  return t.toString();
}

/** 2026-11-30 09:35:17 UTC: a time (ISO 8601) a reader in another zone can place. */
export const formatTime = (iso: string) => `${new Date(iso).toISOString().replace('T', ' ').slice(0, 19)} UTC`;

export function formatMs(ms: number): string {
  if (ms < 1000) return `${ms.toFixed(0)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const m = Math.floor(ms / 60_000);
  return `${m} min ${Math.round((ms - m * 60_000) / 1000)} s`;
}

/** A version as stored in the ledger (see versionToJson), for people. */
export function formatStoredVersion(v: unknown): string {
  if (v === null || v === undefined) return '(absent)';
  if (Array.isArray(v)) return v.join(',');
  if (typeof v === 'object') {
    const present = Object.entries(v as Record<string, unknown>).filter(([, n]) => n !== null);
    return present.length === 0 ? '(absent)' : present.map(([k, n]) => `${k}=${String(n)}`).join(' ');
  }
  return String(v);
}

/** The end of a run, as `--format json` prints it (`leapfrog.run/v1`). */
export function runJson(ctx: { chain: { name: string }; layout: { stateDir: string } }, r: RunResult, snapshot: string) {
  return {
    format: RUN_FORMAT,
    chain: ctx.chain.name,
    target: r.target,
    run: r.runId,
    status: r.status,
    ledger: r.ledgerFile,
    runDir: r.runDir,
    steps: r.steps.map((s) => ({ id: s.step_id, status: s.status, attempts: s.attempts, exitCode: s.exit_code, durationMs: s.duration_ms, log: s.log_path })),
    snapshot,
    snapshots: r.snapshots.map((x) => ({ id: x.id, database: x.database, before: x.before_step, file: x.file, sha256: x.sha256, bytes: x.bytes })),
    error: r.error ? { message: r.error.message, details: r.error.details } : null,
    versions: versionsJson(r.versions),
  };
}

/** The end of a run, for people. */
export function runText(ctx: { layout: HintFlags }, r: RunResult, snapshot: string): string {
  return `Run ${r.runId} ${r.status}${snapshot === 'none' ? ' (no snapshot taken: --snapshot none)' : ''}. Versions now:\n${finalVersionsText(r.versions)}\nLedger: ${r.ledgerFile} (${hint(ctx.layout, ['ledger', 'show', String(r.runId)], false)})`;
}
