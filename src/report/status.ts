import { formatVersion } from '../chain/version.js';
import type { LastRun, Status, StatusVerdict } from '../core/status.js';
import type { RunRow } from '../ledger/ledger.js';
import { formatMs, table, versionsJson } from './render.js';

/** `leapfrog status` for people (one screen) and as `leapfrog.status/v1`. */

export const STATUS_EXIT: Record<StatusVerdict, number> = { done: 0, pending: 1, failed: 2 };

const took = (r: RunRow) => (r.finished_at ? `, took ${formatMs(Date.parse(r.finished_at) - Date.parse(r.started_at))}` : '');

function projects(s: Status) {
  const plan = s.pre.plan;
  return Object.entries(s.pre.versions ?? {}).map(([project, dbs]) => {
    const p = plan?.projects.find((x) => x.project === project);
    const pending = p?.steps.map((x) => x.step.id) ?? [];
    const next = p?.steps[0]?.step.release;
    return { project, versions: dbs, reached: p ? p.at ?? null : null, nextHop: next ? `${project}@${next}` : null, pending };
  });
}

function lastRunLine(l: LastRun | undefined): string {
  if (!l) return 'Last run: none recorded on this target.';
  const r = l.run;
  const state = l.died ? 'died (never recorded its end; its process is gone)' : r.status === 'running' ? 'in progress' : r.status;
  const where = l.stoppedAt.map((s) => `${s.step_id} (${s.status === 'started' ? 'in flight' : s.status}${s.error ? `: ${s.error}` : ''})`);
  return `Last run: ${r.id} ${state}, started ${r.started_at}${took(r)}${where.length > 0 ? `; stopped at ${where.join(', ')}` : ''}${r.error && where.length === 0 ? `; ${r.error}` : ''}.`;
}

export function statusText(s: Status): string {
  const rows = projects(s);
  const n = s.pre.plan?.steps.length;
  const head =
    s.verdict === 'failed' ? 'the last run did not finish' : s.verdict === 'done' ? 'every database is at the end of the chain' : n === undefined ? 'no plan (see below)' : `${n} step${n === 1 ? '' : 's'} pending`;
  const t = table(['project', 'database', 'version', 'reached', 'next hop', 'pending']);
  for (const p of rows) {
    Object.entries(p.versions).forEach(([db, v], i) =>
      t.push(i === 0 ? [p.project, db, formatVersion(v), p.reached ?? '(chain start)', p.nextHop ?? '-', p.pending.length === 0 ? '-' : `${p.pending.length} from ${p.pending[0]}`] : ['', db, formatVersion(v), '', '', '']),
    );
  }
  const reh = s.lastRehearsal;
  return [
    `Status: chain ${s.pre.chain.name} on ${s.pre.target}: ${head} (exit ${STATUS_EXIT[s.verdict]})`,
    t.toString(),
    lastRunLine(s.lastRun),
    reh ? `Last rehearsal: run ${reh.run.id} ${reh.run.status}, started ${reh.run.started_at}${took(reh.run)} (${reh.dir}).` : 'Last rehearsal: none in this state directory.',
  ].join('\n');
}

export function statusJson(s: Status) {
  const run = (r: RunRow) => ({ id: r.id, status: r.status, kind: r.kind, startedAt: r.started_at, finishedAt: r.finished_at, error: r.error });
  return {
    format: 'leapfrog.status/v1',
    chain: s.pre.chain.name,
    target: s.pre.target,
    verdict: s.verdict,
    exitCode: STATUS_EXIT[s.verdict],
    versions: s.pre.versions ? versionsJson(s.pre.versions) : null,
    projects: projects(s).map(({ versions: _v, ...p }) => p),
    lastRun: s.lastRun ? { ...run(s.lastRun.run), died: s.lastRun.died, stoppedAt: s.lastRun.stoppedAt.map((x) => ({ step: x.step_id, status: x.status, error: x.error, log: x.log_path })) } : null,
    lastRehearsal: s.lastRehearsal ? { ...run(s.lastRehearsal.run), dir: s.lastRehearsal.dir } : null,
    refusals: s.pre.refusals.map((r) => ({ about: r.about, message: r.message, details: r.details })),
  };
}
