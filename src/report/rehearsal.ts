import path from 'node:path';
import type { RehearsalReport } from '../rehearse/report.js';
import { formatMs, formatStoredVersion, formatTime, table } from './render.js';

/** The rehearsal report for people (text) and as one self-contained HTML file with a timeline of hops. */

const mb = (n: number) => `${(n / 1024 / 1024).toFixed(1)} MB`;
/** A file's size: KiB below a MiB, where MB would read 0.0. */
const size = (n: number) => (n < 1024 * 1024 ? `${Math.ceil(n / 1024)} KiB` : mb(n));


/** What the rehearsal ran with: the facts a reader needs to trust (or redo) it. */
function metadata(r: RehearsalReport): [string, string][] {
  return [
    ['date', formatTime(r.createdAt)],
    ['leapfrog', r.leapfrogVersion],
    ['chain file', `${r.chainFile} (sha256 ${r.chainSha256})`],
    ['dumps', r.dumps.map((d) => `${path.basename(d.file)} (${size(d.bytes)})`).join(', ') || '(none)'],
    ['server', `${r.target.mode}: ${r.server ? `${r.server.flavour} ${r.server.version}` : 'unknown'}`],
    ...r.envs.map((e): [string, string] => [`env ${e.name}`, `sha256 ${e.sha256}`]),
  ];
}

/** The change from the previous rehearsal's hop: "+1.2 s (+15%)", or "-" without one. */
export function delta(now: number, was: number | null | undefined): string {
  if (was === null || was === undefined) return '-';
  const d = now - was;
  const pct = was > 0 ? ` (${d >= 0 ? '+' : ''}${Math.round((d / was) * 100)}%)` : '';
  return `${d >= 0 ? '+' : '-'}${formatMs(Math.abs(d))}${pct}`;
}

const stepRuns = (n: number) => `${n} run${n === 1 ? '' : 's'}`;

export function rehearsalText(r: RehearsalReport): string {
  const out: string[] = [];
  out.push(`Rehearsal of chain ${r.chain}: ${r.status.toUpperCase()}`);
  for (const [k, v] of metadata(r)) out.push(`${k[0]!.toUpperCase()}${k.slice(1)}: ${v}`);
  out.push(`Where: ${r.target.mode} ${r.target.description}${r.target.prefix ? ` (databases prefixed ${r.target.prefix})` : ''}${r.target.kept ? ' — kept' : ''}`);
  if (r.restore) {
    const rate = r.restore.durationMs > 0 ? r.restore.bytes / 1024 / 1024 / (r.restore.durationMs / 1000) : 0;
    out.push(`Restore: ${mb(r.restore.bytes)} in ${formatMs(r.restore.durationMs)} (${rate.toFixed(1)} MB/s, ${r.restore.jobs} connections)`);
  }
  out.push('');
  if (r.hops.length === 0) out.push('Hops: none ran (the restored databases were already at the chain\'s end)');
  else {
    const cmp = r.previous !== null;
    const t = table(['hop', 'status', 'starts at', 'duration', 'steps', ...(cmp ? ['previous', 'change'] : [])]);
    for (const h of r.hops) {
      const was = cmp ? [h.previousMs == null ? '-' : formatMs(h.previousMs), delta(h.durationMs, h.previousMs)] : [];
      t.push([`${h.project}@${h.release}`, h.status, `+${formatMs(h.startMs)}`, formatMs(h.durationMs), String(h.steps.length), ...was]);
    }
    out.push(cmp ? `Hops (compared with rehearsal ${r.previous!.rehearsal}):` : 'Hops:', t.toString());
  }
  if (r.slowest.length > 0) {
    const t = table(['slowest steps', 'hop', 'duration', 'runs']);
    for (const s of r.slowest) t.push([s.id, `${s.project}@${s.release}`, formatMs(s.durationMs), String(s.attempts)]);
    out.push(t.toString());
  }
  const p = r.prediction;
  if (p) {
    out.push(
      `Predicted downtime: ${formatMs(p.wallMs)} with --parallel ${p.parallel} (hops back to back: ${formatMs(p.serialMs)}; per project: ${Object.entries(p.perProjectMs)
        .map(([k, v]) => `${k} ${formatMs(v)}`)
        .join(', ')})`,
    );
  } else out.push('Predicted downtime: none (the rehearsal failed; its timings predict nothing)');
  if (r.caveat) out.push(`Caveat: ${r.caveat}`);
  out.push('');
  const v = table(['project', 'database', 'version']);
  for (const [proj, dbs] of Object.entries(r.versions)) for (const [db, ver] of Object.entries(dbs)) v.push([proj, db, formatStoredVersion(ver)]);
  if (Object.keys(r.versions).length > 0) out.push('Versions now:', v.toString(), '');
  for (const f of r.failures) {
    out.push(`FAILED ${f.step}: ${f.message}`, `  $ ${f.command}`, `  log: ${f.log ?? '(none)'}`, ...f.logTail.map((l) => `  | ${l}`), '');
  }
  if (r.audit) {
    const changed = r.audit.rows.filter((x) => x.verdict !== 'kept');
    const compared = `${r.audit.rows.length} tables compared, ${r.audit.rows.filter((x) => x.verdict === 'kept').length} unchanged`;
    out.push(r.audit.status === 'incomplete' ? `Audit: INCOMPLETE — the chain stopped before its end, so the counts prove nothing (${compared})` : `Audit: ${r.audit.status.toUpperCase()} — ${compared}`);
    if (changed.length > 0) {
      const t = table(['table', 'before', 'after', 'verdict']);
      for (const x of changed) t.push([`${x.project}.${x.database}.${x.table}`, String(x.before), String(x.after), x.verdict === 'declared' ? `declared (${x.declaredBy.join(', ')})` : x.verdict === 'lost' ? 'LOST' : x.verdict]);
      out.push(t.toString());
    }
  }
  if (r.error) out.push('', `Error: ${r.error}`);
  out.push('', `Ledger: ${r.ledger}`);
  return out.join('\n');
}

const esc = (s: string) => s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

/** One bar per hop, one row per project, on a shared time axis. */
export function timelineSvg(r: RehearsalReport): string {
  const projects = [...new Set(r.hops.map((h) => h.project))];
  const label = 130;
  const width = 960;
  const plot = width - label - 20;
  const row = 30;
  const top = 24;
  const height = top + projects.length * row + 10;
  const total = Math.max(1, ...r.hops.map((h) => h.startMs + h.durationMs));
  const x = (ms: number) => label + (ms / total) * plot;
  const parts: string[] = [];
  for (let i = 0; i <= 4; i++) {
    const ms = (total * i) / 4;
    // The last label ends at its tick: centred, it ran past the drawing's right edge and was clipped.
    const anchor = i === 4 ? 'end' : 'middle';
    parts.push(`<line class="tick" x1="${x(ms).toFixed(1)}" y1="${top - 6}" x2="${x(ms).toFixed(1)}" y2="${height - 6}"/><text class="axis" x="${x(ms).toFixed(1)}" y="${top - 10}" text-anchor="${anchor}">${esc(formatMs(ms))}</text>`);
  }
  projects.forEach((p, i) => {
    const y = top + i * row;
    parts.push(`<text class="project" x="${label - 8}" y="${y + row / 2 + 4}" text-anchor="end">${esc(p)}</text>`);
    for (const h of r.hops.filter((hh) => hh.project === p)) {
      const w = Math.max(2, (h.durationMs / total) * plot);
      parts.push(
        `<g class="hop-group"><rect class="hop ${h.status}" data-project="${esc(h.project)}" data-release="${esc(h.release)}" data-status="${h.status}" data-start-ms="${Math.round(h.startMs)}" data-duration-ms="${Math.round(h.durationMs)}" x="${x(h.startMs).toFixed(1)}" y="${y + 4}" width="${w.toFixed(1)}" height="${row - 8}" rx="3"><title>${esc(`${h.project}@${h.release}: ${formatMs(h.durationMs)} (${h.status})`)}</title></rect>` +
          (w > 44 ? `<text class="bar-label" x="${(x(h.startMs) + 4).toFixed(1)}" y="${y + row / 2 + 4}">${esc(h.release)}</text>` : '') +
          '</g>',
      );
    }
  });
  return `<svg id="timeline" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img" aria-label="hops per project over time">${parts.join('')}</svg>`;
}

const CSS = `
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #1d2733; }
h1 { font-size: 1.4em; } h2 { font-size: 1.1em; margin-top: 1.6em; }
.status { padding: 2px 8px; border-radius: 4px; color: #fff; }
.status.succeeded, .status.passed { background: #2e7d32; } .status.failed { background: #c62828; } .status.incomplete { background: #b26a00; }
table { border-collapse: collapse; } td, th { border-bottom: 1px solid #dde; padding: 3px 10px; text-align: left; }
td:nth-child(-n+4) { white-space: nowrap; }
tr.lost td { background: #fdecea; font-weight: bold; }
pre { background: #f5f5f7; padding: 8px; overflow-x: auto; }
svg text { font: 12px system-ui, sans-serif; fill: #1d2733; } svg .axis { fill: #667; font-size: 11px; }
svg .tick { stroke: #e3e3ea; } svg .bar-label { fill: #fff; font-size: 11px; pointer-events: none; }
.caveat { background: #fff6e0; border-left: 4px solid #ef8f00; padding: 6px 10px; }
dl.meta { display: grid; grid-template-columns: max-content auto; gap: 2px 14px; } dl.meta dt { font-weight: bold; } dl.meta dd { margin: 0; overflow-wrap: anywhere; }
td.num { text-align: right; }
rect.hop { fill: #1e6fb8; } rect.hop.failed { fill: #c62828; } rect.hop.interrupted, rect.hop.incomplete { fill: #ef8f00; }
`;

/** A link from the HTML file's directory to a log, or the path as text when there is no directory to link from. */
function logLink(log: string | null, from: string | undefined): string {
  if (!log) return '';
  if (from === undefined) return `<code>${esc(log)}</code>`;
  const rel = path.relative(from, log).split(path.sep).map(encodeURIComponent).join('/');
  return `<a class="log" href="${esc(rel)}">log</a>`;
}

/** `o.dir`: the directory the HTML file is written to; links to the step logs are relative to it. */
export function rehearsalHtml(r: RehearsalReport, o: { dir?: string | undefined } = {}): string {
  const p = r.prediction;
  const dir = o.dir === undefined ? undefined : path.resolve(o.dir);
  const rows = (cells: string[][], cls: (i: number) => string = () => '') => cells.map((c, i) => `<tr class="${cls(i)}">${c.map((x) => `<td>${x}</td>`).join('')}</tr>`).join('');
  const cmp = r.previous !== null;
  const hops = rows(
    r.hops.map((h) => [
      esc(`${h.project}@${h.release}`),
      esc(h.status),
      `+${esc(formatMs(h.startMs))}`,
      esc(formatMs(h.durationMs)),
      ...(cmp ? [h.previousMs == null ? '-' : esc(formatMs(h.previousMs)), `<span class="delta">${esc(delta(h.durationMs, h.previousMs))}</span>`] : []),
      esc(h.steps.map((s) => `${s.id} ${s.status}`).join(', ')),
    ]),
  );
  const auditRows = r.audit?.rows ?? [];
  const audit = rows(
    auditRows.map((a) => [esc(`${a.project}.${a.database}.${a.table}`), String(a.before), String(a.after), esc(a.verdict === 'declared' ? `declared by ${a.declaredBy.join(', ')}` : a.verdict)]),
    (i) => auditRows[i]!.verdict,
  );
  const versions = rows(Object.entries(r.versions).flatMap(([proj, dbs]) => Object.entries(dbs).map(([db, v]) => [esc(proj), esc(db), esc(formatStoredVersion(v))])));
  const failures = r.failures.map((f) => `<h3>${esc(f.step)}</h3><p>${esc(f.message)}</p><pre>$ ${esc(f.command)}</pre><p>log: ${logLink(f.log, dir)} <code>${esc(f.log ?? '')}</code></p><pre>${esc(f.logTail.join('\n'))}</pre>`).join('');
  const steps = rows(
    r.hops.flatMap((h) =>
      h.steps.map((s) => [esc(s.id), esc(`${h.project}@${h.release}`), esc(s.kind), esc(s.status), `<span class="duration">${s.durationMs === null ? '-' : esc(formatMs(s.durationMs))}</span>`, `<span class="runs">${s.attempts}</span>`, logLink(s.log, dir)]),
    ),
  );
  const slowest = rows(r.slowest.map((s) => [esc(s.id), esc(`${s.project}@${s.release}`), esc(formatMs(s.durationMs)), esc(stepRuns(s.attempts))]));
  const meta = metadata(r)
    .map(([k, v]) => `<dt>${esc(k)}</dt><dd data-field="${esc(k)}">${esc(v)}</dd>`)
    .join('');
  const prediction = p
    ? `<p id="prediction"><strong>Predicted downtime: ${esc(formatMs(p.wallMs))}</strong> with --parallel ${p.parallel} (hops back to back: ${esc(formatMs(p.serialMs))}).</p>`
    : '<p id="prediction">No predicted downtime: the rehearsal failed, and the timings of a chain that did not finish predict nothing.</p>';
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>leapfrog rehearsal: ${esc(r.chain)}</title><style>${CSS}</style></head>
<body data-status="${r.status}" data-hops="${r.hops.length}">
<h1>Rehearsal of ${esc(r.chain)} <span class="status ${r.status}">${r.status}</span></h1>
<p>Where: ${esc(r.target.mode)} ${esc(r.target.description)}${r.target.prefix ? ` (prefix <code>${esc(r.target.prefix)}</code>)` : ''}.
${r.restore ? `Restore: ${esc(mb(r.restore.bytes))} in ${esc(formatMs(r.restore.durationMs))} over ${r.restore.jobs} connections.` : ''}</p>
<dl class="meta" id="metadata">${meta}</dl>
${prediction}
${r.caveat ? `<p class="caveat" id="caveat"><strong>Caveat:</strong> ${esc(r.caveat)}.</p>` : ''}
${r.error ? `<p class="error"><strong>Error:</strong> ${esc(r.error)}</p>` : ''}
<h2>Timeline</h2>
${timelineSvg(r)}
<h2>Hops</h2>
${cmp ? `<p id="previous">Compared with the previous rehearsal of this chain, ${esc(r.previous!.rehearsal)}${r.previous!.finishedAt ? ` (${esc(formatTime(r.previous!.finishedAt))})` : ''}.</p>` : ''}
<table id="hops"><thead><tr><th>hop</th><th>status</th><th>starts at</th><th>duration</th>${cmp ? '<th>previous</th><th>change</th>' : ''}<th>steps</th></tr></thead><tbody>${hops}</tbody></table>
<h2>Slowest steps</h2>
<table id="slowest"><thead><tr><th>step</th><th>hop</th><th>duration</th><th>runs</th></tr></thead><tbody>${slowest}</tbody></table>
<h2>Steps</h2>
<table id="steps"><thead><tr><th>step</th><th>hop</th><th>kind</th><th>status</th><th>duration</th><th>runs</th><th>log</th></tr></thead><tbody>${steps}</tbody></table>
${failures ? `<h2>Failures</h2>${failures}` : ''}
<h2>Versions now</h2>
<table><thead><tr><th>project</th><th>database</th><th>version</th></tr></thead><tbody>${versions}</tbody></table>
<h2>Audit <span class="status ${r.audit?.status ?? 'failed'}">${r.audit?.status ?? 'not run'}</span></h2>
<table><thead><tr><th>table</th><th>rows before</th><th>rows after</th><th>verdict</th></tr></thead><tbody>${audit}</tbody></table>
<p>Ledger: <code>${esc(r.ledger)}</code></p>
</body></html>
`;
}
