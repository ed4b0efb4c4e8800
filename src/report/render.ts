import Table from 'cli-table3';
import type { Plan, PlannedStep } from '../chain/plan.js';
import type { Version } from '../chain/types.js';
import { formatVersion, versionToJson } from '../chain/version.js';

/**
 * Plans and results as text (80-column friendly tables) and as JSON. The
 * JSON carries a `format` tag so scripts can rely on its shape.
 */

export const PLAN_FORMAT = 'leapfrog.plan/v1';
export const RUN_FORMAT = 'leapfrog.run/v1';

function table(head: string[]): Table.Table {
  return new Table({ head, style: { head: [], border: [] }, wordWrap: true, wrapOnWordBoundary: false });
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

export function planText(plan: Plan, target: string, steps: readonly (PlannedStep & { argv: readonly string[] })[]): string {
  const out: string[] = [`Chain ${plan.chain} on ${target}${plan.until ? `, until ${plan.until}` : ''}`, ''];
  for (const p of plan.projects) {
    out.push(`${p.project}: ${p.at ? `at ${p.at}` : 'at the chain start'} (${versionsLine(p.versions)}); ${p.steps.length === 0 ? 'nothing to run' : `${p.steps.length} step${p.steps.length === 1 ? '' : 's'} to run`}`);
  }
  if (steps.length === 0) {
    out.push('', plan.until ? `Nothing to run: the target is already at ${plan.until} or beyond.` : `Nothing to run: the target is already at the end of chain ${plan.chain}.`);
    return out.join('\n');
  }
  const t = table(['#', 'hop', 'kind', 'env', 'command']);
  steps.forEach((s, i) => {
    const cmd = s.argv.join(' ') + (s.conditional ? '\n(if its probe still says so)' : '');
    t.push([String(i + 1), `${s.step.project}@${s.step.release}`, s.step.kind, s.step.env, cmd]);
  });
  out.push('', t.toString());
  return out.join('\n');
}

export function finalVersionsText(all: Readonly<Record<string, Readonly<Record<string, Version>>>>): string {
  const t = table(['project', 'database', 'version']);
  for (const [p, dbs] of Object.entries(all)) for (const [db, v] of Object.entries(dbs)) t.push([p, db, formatVersion(v)]);
  return t.toString();
}

export function formatMs(ms: number): string {
  if (ms < 1000) return `${ms.toFixed(0)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const m = Math.floor(ms / 60_000);
  return `${m} min ${Math.round((ms - m * 60_000) / 1000)} s`;
}
