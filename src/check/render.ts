import type { Plan } from '../chain/plan.js';
import { formatMs, planJson, planLines, planText, versionsJson } from '../report/render.js';
import type { PreparedStep } from '../chain/argv.js';
import type { Estimate } from './estimate.js';
import { exitCodeFor, type CheckReport } from './report.js';
import { modelJson, modelText, sizeText } from '../report/prediction.js';

/**
 * The report three ways: text in the style of `nova-status upgrade check`
 * (a boxed table of Check / Result / Details, 80 columns), JSON with a
 * versioned format for scripts, and Markdown to paste into a change ticket.
 * All three carry the same checks, plan and estimate.
 */

export const CHECK_FORMAT = 'leapfrog.check/v1';
const WIDTH = 80;

/** Word-wrap one paragraph to `width`; words longer than a line (paths) are cut. */
export function wrap(text: string, width: number, indent = ''): string[] {
  const out: string[] = [];
  let first = true; // only the very first line goes unindented
  for (const para of text.split('\n')) {
    let line = '';
    let started = false;
    const room = () => width - (first ? 0 : indent.length);
    const flush = () => {
      out.push((first ? '' : indent) + line);
      first = false;
      started = true;
      line = '';
    };
    for (let word of para.split(/ +/)) {
      while (word.length > room()) {
        if (line !== '') flush();
        line = word.slice(0, room());
        word = word.slice(room());
        flush();
      }
      if (word === '') continue;
      if (line === '') line = word;
      else if (line.length + 1 + word.length <= room()) line += ' ' + word;
      else {
        flush();
        line = word;
      }
    }
    if (line !== '' || !started) flush();
  }
  return out;
}

function box(lines: string[]): string {
  const inner = WIDTH - 4;
  return lines.map((l) => (l === '-' ? `+${'-'.repeat(WIDTH - 2)}+` : `| ${l.padEnd(inner)} |`)).join('\n');
}

export function estimateLines(e: Estimate | undefined): string[] {
  if (!e || e.hops.length === 0) return [];
  const runs = [...new Set(e.hops.map((h) => h.from ?? (h.fromRun === undefined ? undefined : `run ${h.fromRun}`)).filter((r) => r !== undefined))];
  const out = [`Estimate (${runs.length > 0 ? `step times of ${runs.join(', ')}` : 'no succeeded run or rehearsal of this chain in the ledger'}):`];
  for (const h of e.hops) {
    out.push(`  ${`${h.project}@${h.release}`.padEnd(24)} ${h.ms === undefined ? 'unknown' : formatMs(h.ms)}`);
    // The steps whose time was scaled by this target's rows, with the model's inputs (check/predict.ts).
    for (const m of h.model ?? []) {
      const t = modelText(m);
      if (t !== undefined) out.push(...wrap(t, WIDTH - 6, '  ').map((l) => `      ${l}`));
    }
  }
  out.push(
    e.totalMs !== undefined
      ? `  ${'total'.padEnd(24)} ${formatMs(e.totalMs)} (one project after another; less with --parallel)`
      : `  ${'total'.padEnd(24)} unknown${e.knownMs > 0 ? ` (at least ${formatMs(e.knownMs)} for the hops with a record)` : ''}: rehearse on a copy to measure it`,
  );
  for (const z of e.sizes ?? []) {
    const t = sizeText(z);
    if (t !== undefined) out.push(...wrap(`${t}: the times above are scaled by a linear model per step (time = fixed + per row × rows), not measured`, WIDTH - 2, '  ').map((l) => `  ${l}`));
  }
  return out;
}

/** The plan as `leapfrog plan` prints it (planLines), wrapped to 80 columns. */
export function planText80(plan: Plan, target: string, steps: readonly PreparedStep[], configDir?: string): string {
  // wrap() splits on spaces, so indentation is added around it.
  return planLines(plan, target, steps, configDir)
    .flatMap((l) => (l.text === '' ? [''] : wrap(l.text, WIDTH - l.indent, ' '.repeat(l.hang)).map((w) => ' '.repeat(l.indent) + w)))
    .join('\n');
}

/**
 * One line per check, result first, under the title: the whole verdict on one
 * screen (about 20 lines) before the boxed details scroll past.
 */
export function summaryLines(r: CheckReport): string[] {
  return [
    ...wrap(`Upgrade Check Results: chain ${r.chain ?? '(invalid)'} on ${r.target}`, WIDTH),
    `Overall: ${r.result} (exit ${exitCodeFor(r.result)})`,
    ...r.checks.map((c) => `  ${c.result.padEnd(8)} ${c.check}`.slice(0, WIDTH)),
  ];
}

export function reportText(r: CheckReport, configDir?: string): string {
  const lines = ['-', ...wrap(`Upgrade Check Results: chain ${r.chain ?? '(invalid)'} on ${r.target}`, WIDTH - 4), '-'];
  for (const c of r.checks) {
    lines.push(...wrap(`Check: ${c.check}`, WIDTH - 4, '  '), `Result: ${c.result}`, ...wrap(`Details: ${c.details}`, WIDTH - 4, '  '), '-');
  }
  const out = [...summaryLines(r), '', box(lines), '', `Overall: ${r.result} (exit ${exitCodeFor(r.result)})`];
  if (r.plan && r.steps) out.push('', planText80(r.plan, r.target, r.steps, configDir));
  const est = estimateLines(r.estimate);
  if (est.length > 0) out.push('', ...est);
  return out.join('\n');
}

export function reportJson(r: CheckReport) {
  return {
    format: CHECK_FORMAT,
    chain: r.chain ?? null,
    target: r.target,
    result: r.result,
    exitCode: exitCodeFor(r.result),
    checks: r.checks.map((c) => ({ check: c.check, result: c.result, details: c.details, ...(c.data === undefined ? {} : { data: c.data }) })),
    versions: r.versions ? versionsJson(r.versions) : null,
    plan: r.plan && r.steps ? planJson(r.plan, r.target, r.steps) : null,
    estimate: r.estimate
      ? {
          hops: r.estimate.hops.map((h) => ({ project: h.project, release: h.release, ms: h.ms ?? null, fromRun: h.fromRun ?? null, from: h.from ?? null, model: (h.model ?? []).map(modelJson) })),
          sizes: r.estimate.sizes ?? [],
          totalMs: r.estimate.totalMs ?? null,
          knownMs: r.estimate.knownMs,
        }
      : null,
  };
}

const cell = (s: string) => s.replace(/\|/g, '\\|').replace(/\n/g, '<br>');

export function reportMarkdown(r: CheckReport, configDir?: string): string {
  const out = [
    `## Pre-flight: chain \`${r.chain ?? '(invalid)'}\` on \`${r.target}\``,
    '',
    `Overall: **${r.result}** (exit ${exitCodeFor(r.result)}), ${new Date().toISOString()}`,
    '',
    '| Check | Result | Details |',
    '|---|---|---|',
    ...r.checks.map((c) => `| ${cell(c.check)} | ${c.result === 'Success' ? c.result : `**${c.result}**`} | ${cell(c.details)} |`),
  ];
  // Unwrapped, as `leapfrog plan` prints it: a code block scrolls sideways, and each argv stays one line to paste.
  if (r.plan && r.steps) out.push('', '### Plan', '', '```', planText(r.plan, r.target, r.steps, configDir), '```');
  const est = estimateLines(r.estimate);
  if (est.length > 0) out.push('', '### Estimate', '', '```', ...est, '```');
  return out.join('\n');
}
