/**
 * leapfrog rehearse end to end: real dumps (the fixture generator's and
 * mariadb-dump's), a real throwaway mariadbd, the real toolchains, the real
 * CLI, and the HTML report opened in a real headless Chromium.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { execa } from 'execa';
import { chromium, type Page } from 'playwright-core';
import { createCloud } from '../fixtures/cloud.js';
import { writeDump } from '../fixtures/dump.js';
import { fingerprint } from '../src/database/fingerprint.js';
import { tableRowCounts } from '../src/database/raw.js';
import { withTarget } from '../src/database/session.js';
import { parseTargetUrl } from '../src/database/url.js';
import { rehearsalHtml } from '../src/report/rehearsal.js';
import type { RehearsalReport } from '../src/rehearse/report.js';
import { CACHE, CHAIN, chainVariant, fakeCloud, leapfrog, MARIADB_SKIP, MARIADB_URL, ROOT, scalar, tempDir, withMariadb } from './helpers.js';

type Json = Record<string, any>;
const HOPS = ['compute', 'identity', 'image'].flatMap((p) => ['kilo', 'liberty', 'mitaka', 'newton'].map((r) => `${p}@${r}`)).sort();

/** Processes whose command line mentions `needle` (a scratch server started under a test's state dir). */
function processesMentioning(needle: string): string[] {
  const out: string[] = [];
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
      if (cmd.includes(needle)) out.push(`${pid}: ${cmd}`);
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** The scratch server left nothing behind: no process under the state dir, no datadir. */
function assertScratchGone(state: string, report: Json): void {
  assert.deepEqual(processesMentioning(state), [], 'no scratch mariadbd still running');
  const dir = report.stateDir as string;
  assert.ok(existsSync(dir), 'the rehearsal directory (ledger, logs) stays');
  assert.deepEqual(readdirSync(dir).filter((f) => f.startsWith('scratch-')), [], 'the scratch datadir is removed');
}

/** Every label of the timeline lies inside the drawing (an SVG clips what runs past its edge). */
async function assertLabelsInside(page: Page, what: string): Promise<void> {
  const svg = (await page.$eval('svg#timeline', (e) => e.getBoundingClientRect().toJSON())) as DOMRect;
  const labels = (await page.$$eval('svg#timeline text', (els) => els.map((e) => ({ text: e.textContent, ...e.getBoundingClientRect().toJSON() })))) as (DOMRect & { text: string })[];
  assert.ok(labels.length > 5, what);
  for (const l of labels) {
    assert.ok(l.left >= svg.left && l.right <= svg.right + 0.5 && l.top >= svg.top && l.bottom <= svg.bottom + 0.5, `${what}: "${l.text}" at x ${l.left}..${l.right}, y ${l.top}..${l.bottom} inside ${svg.left}..${svg.right}, ${svg.top}..${svg.bottom}`);
  }
}

describe('rehearse on a scratch server', () => {
  test('a gzip dump of the fake cloud restores, the chain runs, one report entry per hop, the audit passes; the HTML timeline has one bar per hop', async () => {
    const dir = tempDir('rehearse');
    const dump = path.join(dir, 'cloud.sql.gz');
    await writeDump(dump, { instances: 80, nullUuids: 3, seed: 7, prefix: '' });
    const state = path.join(dir, 'state');
    // The report in a directory of its own, beside the state dir: its links to the logs must climb out of it.
    mkdirSync(path.join(dir, 'out'));
    const html = path.join(dir, 'out', 'report.html');
    const r = await leapfrog(['rehearse', '--chain', CHAIN, '--dump', dump, '--state-dir', state, '--cache-dir', CACHE, '--parallel', '3', '--jobs', '3', '--report', html, '--format', 'json']);
    assert.equal(r.exitCode, 0, r.stderr);
    const report = JSON.parse(r.stdout) as Json;
    assert.equal(report.format, 'leapfrog.rehearsal/v1');
    assert.equal(report.status, 'succeeded');
    assert.equal(report.target.mode, 'scratch');
    assert.deepEqual(report.hops.map((h: Json) => `${h.project}@${h.release}`).sort(), HOPS);
    for (const h of report.hops) {
      assert.equal(h.status, 'succeeded');
      assert.ok(h.durationMs > 0, `${h.project}@${h.release} has a duration`);
    }
    assert.deepEqual(report.versions.compute, { main: 334, api: 20 });
    assert.equal(report.audit.status, 'passed');
    const instances = report.audit.rows.find((x: Json) => x.table === 'instances');
    assert.deepEqual([instances.before, instances.after, instances.verdict], [83, 80, 'declared']);
    assert.ok(report.audit.rows.length >= 20, 'every table on both sides is compared');
    assert.ok(report.restore.bytes > 0 && report.restore.jobs === 3);
    const p = report.prediction;
    assert.equal(p.parallel, 3);
    assert.ok(p.serialMs > p.wallMs, 'three projects side by side take less than their hops back to back');
    assert.match(r.stderr, /restore \d+\/\d+ MB \(100%\)/);
    assert.match(r.stderr, /scratch server: starting .*redo log 256 MiB/, 'a small dump gets the smallest redo log');

    // What it ran with: date, version, chain checksum, dumps, server, envs.
    assert.ok(Math.abs(Date.parse(report.createdAt) - Date.now()) < 10 * 60_000, report.createdAt);
    assert.equal(report.leapfrogVersion, (JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as Json).version);
    assert.equal(report.chainSha256, createHash('sha256').update(readFileSync(CHAIN)).digest('hex'));
    assert.deepEqual(report.dumps, [{ file: dump, bytes: statSync(dump).size }]);
    assert.equal(report.server.flavour, 'MariaDB');
    assert.match(report.server.version, /^\d+\.\d+\.\d+/);
    const envSha = (name: string) => (parseYaml(readFileSync(path.join(ROOT, 'envs', `${name}.yaml`), 'utf8')) as Json).source.sha256 as string;
    assert.equal(report.envs.length, 12);
    for (const e of report.envs) assert.equal(e.sha256, envSha(e.name), e.name);
    // Per step its runs; the slowest five, slowest first, are the five longest steps.
    const steps = report.hops.flatMap((h: Json) => h.steps) as Json[];
    assert.ok(steps.some((x) => x.attempts > 1), 'a data step ran more than once');
    const longest = steps.map((x) => x.durationMs as number).sort((a, b) => b - a).slice(0, 5);
    assert.deepEqual(report.slowest.map((x: Json) => x.durationMs), longest);
    assert.match(report.caveat, /no doublewrite buffer.*innodb_flush_log_at_trx_commit=0.*optimistic/);
    assert.match(report.caveat, /no binary log/);

    // Its own ledger, under the main state dir, with the run marked as a rehearsal.
    assert.ok(report.ledger.startsWith(path.join(state, 'rehearsals')));
    const runs = JSON.parse((await leapfrog(['ledger', 'runs', '--state-dir', path.dirname(report.ledger), '--format', 'json'])).stdout) as Json;
    assert.deepEqual(runs.runs.map((x: Json) => x.kind), ['rehearsal']);
    assert.equal(existsSync(path.join(state, 'ledger.sqlite3')), false, 'the main ledger is not written');
    assertScratchGone(state, report);

    const browser = await chromium.launch({
      executablePath: '/usr/bin/chromium',
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
    });
    try {
      const page = await browser.newPage();
      const requests: string[] = [];
      page.on('request', (req) => requests.push(req.url()));
      await page.goto(pathToFileURL(html).href);
      const bars = await page.$$eval('svg#timeline rect.hop', (els) =>
        els.map((e) => ({ hop: `${e.getAttribute('data-project')}@${e.getAttribute('data-release')}`, width: e.getBoundingClientRect().width, x: e.getBoundingClientRect().x })),
      );
      assert.deepEqual(bars.map((b) => b.hop).sort(), HOPS, 'one bar per hop');
      assert.ok(bars.every((b) => b.width >= 2), 'every bar is drawn');
      const compute = bars.filter((b) => b.hop.startsWith('compute@'));
      assert.ok(compute.every((b, i) => i === 0 || b.x > compute[i - 1]!.x), "a project's hops follow each other on the time axis");
      assert.deepEqual(requests.filter((u) => !u.startsWith('file:')), [], 'the report loads nothing from outside');
      assert.equal(await page.getAttribute('body', 'data-status'), 'succeeded');

      const field = (k: string) => page.textContent(`#metadata dd[data-field="${k}"]`);
      assert.match((await field('date'))!, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$/);
      assert.equal(await field('leapfrog'), report.leapfrogVersion);
      assert.ok((await field('chain file'))!.includes(report.chainSha256));
      assert.match((await field('dumps'))!, new RegExp(`^cloud\\.sql\\.gz \\(${Math.ceil(statSync(dump).size / 1024)} KiB\\)$`));
      assert.equal(await field('server'), `scratch: MariaDB ${report.server.version}`);
      assert.equal(await field('env compute-kilo'), `sha256 ${envSha('compute-kilo')}`);
      assert.match((await page.textContent('#prediction'))!, /^Predicted downtime: /);
      assert.match((await page.textContent('#caveat'))!, /throwaway.*no binary log.*no doublewrite.*innodb_flush_log_at_trx_commit=0.*optimistic/);

      // One row per step, with its duration, runs and a link to its log that resolves from where the report is.
      const rows = await page.$$eval('#steps tbody tr', (trs) =>
        trs.map((tr) => ({ step: tr.children[0]!.textContent, duration: tr.querySelector('.duration')!.textContent, runs: Number(tr.querySelector('.runs')!.textContent), href: (tr.querySelector('a.log') as HTMLAnchorElement | null)?.href, raw: tr.querySelector('a.log')?.getAttribute('href') })),
      );
      assert.equal(rows.length, steps.length);
      assert.deepEqual(rows.map((x) => x.runs), steps.map((x) => x.attempts));
      assert.ok(rows.every((x) => /^\d/.test(x.duration!)), 'every step has a duration');
      for (const x of rows) {
        assert.ok(x.href && x.raw!.startsWith('../state/rehearsals/'), `${x.step}: relative link ${x.raw}`);
        const log = fileURLToPath(x.href);
        assert.ok(existsSync(log), `${x.step}: ${log} exists`);
        assert.equal(log, steps.find((s) => s.id === x.step)!.log);
      }
      const slow = await page.$$eval('#slowest tbody tr', (trs) => trs.map((tr) => tr.children[0]!.textContent));
      assert.deepEqual(slow, report.slowest.map((x: Json) => x.id));
      assert.equal(slow.length, 5);

      // Nothing clipped: every label of the timeline lies inside the drawing, and the page does not scroll sideways.
      assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), 'no horizontal overflow');
      await assertLabelsInside(page, 'this rehearsal');
      // The same hops a thousand times longer: axis labels such as "80 min 12 s" are the widest the axis draws.
      const slower = { ...report, hops: report.hops.map((h: Json) => ({ ...h, startMs: h.startMs * 1000, durationMs: h.durationMs * 1000 })) };
      const page2 = await browser.newPage();
      await page2.setContent(rehearsalHtml(slower as RehearsalReport));
      await assertLabelsInside(page2, 'hours-long hops');
      // Kept beside the report, for a person to look at.
      const shot = path.join(dir, 'report.png');
      await page.screenshot({ path: shot, fullPage: true });
      assert.ok(statSync(shot).size > 10_000, `screenshot ${shot}`);
    } finally {
      await browser.close();
    }
  });

  test('rows a step deletes without declaring it fail the audit', async () => {
    const dir = tempDir('rehearse');
    const dump = path.join(dir, 'cloud.sql');
    await writeDump(dump, { instances: 40, nullUuids: 4, seed: 3, prefix: '' });
    const chain = chainVariant('undeclared-delete', (c) => {
      delete c.releases.find((r: Json) => r.release === 'kilo').steps[0].deletes;
    });
    const state = path.join(dir, 'state');
    const r = await leapfrog(['rehearse', '--chain', chain, '--dump', dump, '--state-dir', state, '--cache-dir', CACHE, '--format', 'json']);
    assert.equal(r.exitCode, 1, r.stderr);
    assert.match(r.stderr, /rehearsal audit: the chain lost rows in 1 table\(s\) that no step declares deleting from: compute\.main\.instances 44 → 40/);
    const report = JSON.parse(r.stdout) as Json;
    assert.equal(report.status, 'failed');
    assert.equal(report.audit.status, 'failed');
    assert.deepEqual(report.audit.rows.filter((x: Json) => x.verdict === 'lost').map((x: Json) => x.table), ['instances']);
    assert.equal(report.failures.length, 0, 'every step succeeded: only the audit failed');
    assert.equal(report.prediction, null, 'a failed rehearsal predicts no downtime');
    assertScratchGone(state, report);
  });

  test('a failing chain is reported with its log tail, and the scratch server is gone afterwards', async () => {
    const dir = tempDir('rehearse');
    const dump = path.join(dir, 'cloud.sql');
    await writeDump(dump, { instances: 30, nullUuids: 0, seed: 5, prefix: '' });
    const chain = chainVariant('no-flavor-step', (c) => {
      const kilo = c.releases.find((r: Json) => r.release === 'kilo');
      kilo.steps = kilo.steps.filter((s: Json) => !(s.data ?? []).includes('migrate_flavor_data'));
    });
    const state = path.join(dir, 'state');
    const html = path.join(dir, 'report.html');
    const r = await leapfrog(['rehearse', '--chain', chain, '--dump', dump, '--state-dir', state, '--cache-dir', CACHE, '--report', html]);
    assert.equal(r.exitCode, 1, r.stderr);
    assert.match(r.stdout, /Rehearsal of chain fakecloud-juno-newton: FAILED/);
    assert.match(r.stdout, /Predicted downtime: none \(the rehearsal failed/);
    // No step lost a row, but a half-run chain proves nothing: the audit is not "passed".
    assert.match(r.stdout, /Audit: INCOMPLETE — the chain stopped before its end/);
    assert.doesNotMatch(r.stdout, /Audit: PASSED/);
    const page = readFileSync(html, 'utf8');
    assert.match(page, /<h2>Audit <span class="status incomplete">incomplete<\/span>/);
    assert.match(page, /No predicted downtime: the rehearsal failed/);
    assert.doesNotMatch(page, /Predicted downtime: \d/);
    assert.match(page, /<a class="log" href="state\/rehearsals\/[^"]+liberty[^"]*"/, 'the failed step links to its log');
    assert.match(r.stdout, /FAILED liberty\/compute\/1: exited 1/);
    assert.match(r.stdout, /\| .*Please run `compute-manage db migrate_flavor_data' first/);
    assert.match(r.stdout, /compute@liberty +│ failed/);
    assert.match(r.stderr, /scratch server: gone/);
    const ledger = /Ledger: (\S+)/.exec(r.stdout)![1]!;
    assertScratchGone(state, { stateDir: path.dirname(ledger) });
  });

  test('SIGINT during the chain stops at a safe point and still removes the scratch server', async () => {
    const dir = tempDir('rehearse');
    const dump = path.join(dir, 'cloud.sql');
    await writeDump(dump, { instances: 30, nullUuids: 0, seed: 9, prefix: '' });
    const state = path.join(dir, 'state');
    const child = execa(process.execPath, [path.join(ROOT, 'bin', 'leapfrog.js'), 'rehearse', '--chain', CHAIN, '--dump', dump, '--state-dir', state, '--cache-dir', CACHE], { reject: false, stdin: 'ignore' });
    let stderr = '';
    await new Promise<void>((resolve) => {
      child.stderr!.on('data', (b: Buffer) => {
        stderr += b.toString();
        if (/kilo\/compute\/2 sync/.test(stderr)) resolve();
      });
      void child.then(() => resolve());
    });
    child.kill('SIGINT');
    const r = await child;
    assert.equal(r.exitCode, 130, String(r.stderr));
    assert.match(String(r.stderr), /scratch server: gone/);
    const rehearsals = path.join(state, 'rehearsals');
    const [only] = readdirSync(rehearsals);
    assertScratchGone(state, { stateDir: path.join(rehearsals, only!) });
  });
});

describe('rehearse on SQLite copies', () => {
  test('rehearsal: rewrites run on the copy before the chain, so a step finds the copy where the live data names the live database; without them the same check fails', async () => {
    const cloud = await fakeCloud({ instances: 10, nullUuids: 0 });
    // What nova keeps in nova_api.cell_mappings: the URL of a database, here the live one.
    const live = new Database(cloud.file('compute'));
    live.exec('CREATE TABLE cell_mappings (name TEXT, database_connection TEXT)');
    live.prepare('INSERT INTO cell_mappings VALUES (?, ?)').run('cell1', `sqlite:///${cloud.file('compute')}`);
    live.close();
    // A step that fails unless the mapping names the database the step itself is given.
    const checkStep = {
      project: 'compute',
      env: 'compute-kilo',
      name: 'cell mapping names this database',
      check: ['sh', '-c', 'test "$(sqlite3 "$0" "SELECT database_connection FROM cell_mappings")" = "sqlite:///$0"', '{{ db.main.path }}'],
    };
    const variant = (name: string, rewrite: boolean) =>
      chainVariant(name, (c) => {
        c.releases.find((r: Json) => r.release === 'kilo').steps.unshift(checkStep);
        if (rewrite) c.projects.compute.rehearsal = [{ database: 'main', sql: "UPDATE cell_mappings SET database_connection = 'sqlite:///{{ db.main.path }}' WHERE name = 'cell1'", why: 'what nova keeps of its cells' }];
      });
    const files = (['compute', 'identity', 'image'] as const).map((n) => cloud.file(n));
    const rehearse = (chain: string) => leapfrog(['rehearse', '--chain', chain, '--dump', ...files, '--state-dir', cloud.state, '--cache-dir', CACHE]);

    const without = await rehearse(variant('no-rewrite', false));
    assert.equal(without.exitCode, 1, without.stderr);
    assert.match(without.stdout, /FAILED kilo\/compute\/1/);

    const r = await rehearse(variant('rewrite', true));
    assert.equal(r.exitCode, 0, r.stdout + r.stderr);
    assert.match(r.stderr, /rehearsal rewrite compute\.main \[0\]: 1 row\(s\) changed \(what nova keeps of its cells\)/);
    assert.equal(scalar(cloud.file('compute'), 'SELECT database_connection FROM cell_mappings'), `sqlite:///${cloud.file('compute')}`, 'the live database is not rewritten');
    assert.equal(scalar(cloud.file('compute'), 'SELECT version FROM migrate_version'), 254);

    // A rewrite naming something outside the data model is refused when the chain loads.
    const bad = chainVariant('bad-rewrite', (c) => {
      c.projects.compute.rehearsal = [{ database: 'main', sql: "UPDATE cell_mappings SET database_connection = '{{ db.cell9.url }}'" }];
    });
    const refused = await leapfrog(['plan', ...cloud.args(bad)]);
    assert.equal(refused.exitCode, 2, refused.stderr);
    assert.match(refused.stderr, /projects\.compute\.rehearsal\[0\]\.sql|rehearsal.*0.*sql/);
    assert.match(refused.stderr, /db\.cell9/);
    // It runs in leapfrog itself, outside the sandbox: it changes rows, it never writes a file.
    const out = path.join(cloud.state, '..', 'exfiltrated.sqlite3');
    const vacuum = chainVariant('vacuum-rewrite', (c) => {
      c.projects.compute.rehearsal = [{ database: 'main', sql: `VACUUM INTO '${out}'` }];
    });
    const r2 = await leapfrog(['rehearse', '--chain', vacuum, '--dump', ...files, '--state-dir', cloud.state, '--cache-dir', CACHE]);
    assert.equal(r2.exitCode, 2, r2.stderr);
    assert.match(r2.stderr, /rehearsal statement changes rows of the copy: UPDATE, INSERT, DELETE or REPLACE, not VACUUM/);
    assert.equal(existsSync(out), false);
  });

  test('the .sqlite3 files are copied, the chain runs on the copies, the originals stay at juno', async () => {
    const cloud = await fakeCloud({ instances: 30, nullUuids: 2 });
    const files = (['compute', 'identity', 'image'] as const).map((n) => cloud.file(n));
    const r = await leapfrog(['rehearse', '--chain', CHAIN, '--dump', ...files, '--state-dir', cloud.state, '--cache-dir', CACHE, '--format', 'json']);
    assert.equal(r.exitCode, 0, r.stderr);
    const report = JSON.parse(r.stdout) as Json;
    assert.equal(report.target.mode, 'sqlite');
    assert.equal(report.server.flavour, 'SQLite');
    assert.equal(report.caveat, null);
    assert.deepEqual(report.dumps.map((d: Json) => d.file), files);
    assert.equal(report.previous, null, 'the first rehearsal of the chain here has nothing to compare with');
    assert.equal(report.audit.status, 'passed');
    assert.equal(report.hops.length, 12);
    assert.equal(scalar(cloud.file('compute'), 'SELECT version FROM migrate_version'), 254);
    assert.equal(scalar(cloud.file('compute'), 'SELECT COUNT(*) FROM instances WHERE uuid IS NULL'), 2);
    assert.equal(existsSync(path.join(report.stateDir, 'db')), false, 'the copies are removed');

    // check-migrations on the real databases quotes the rehearsal's timings as the window's estimate.
    const check = await leapfrog(['check-migrations', ...cloud.args(), '--format', 'json']);
    const est = (JSON.parse(check.stdout) as Json).estimate;
    assert.equal(est.hops.length, 12);
    assert.ok(est.hops.every((h: Json) => h.ms > 0 && /^rehearsal .* \(run 1\)$/.test(h.from)), JSON.stringify(est.hops[0]));
    assert.ok(est.totalMs > 0);

    // `ledger runs` lists the rehearsal beside the real runs, marked, with zoned times, end and duration.
    const real = await leapfrog(['run', ...cloud.args(), '--until', 'kilo']);
    assert.equal(real.exitCode, 0, real.stderr);
    const listed = JSON.parse((await leapfrog(['ledger', 'runs', '--state-dir', cloud.state, '--format', 'json'])).stdout) as Json;
    assert.deepEqual(listed.runs.map((x: Json) => [x.kind, x.rehearsal]), [['run', null], ['rehearsal', path.basename(report.stateDir)]], 'newest first');
    const [mine, rehearsal] = listed.runs as [Json, Json];
    assert.equal(mine.ledger, path.join(cloud.state, 'ledger.sqlite3'));
    assert.equal(rehearsal.ledger, report.ledger);
    for (const x of [mine, rehearsal]) assert.equal(x.duration_ms, Date.parse(x.finished_at) - Date.parse(x.started_at));
    const text = await leapfrog(['ledger', 'runs', '--state-dir', cloud.state]);
    assert.equal(text.exitCode, 0, text.stderr);
    const line = text.stdout.split('\n').find((l) => l.includes(`${path.basename(report.stateDir)}/1`));
    assert.ok(line, text.stdout);
    const utc = (iso: string) => `${iso.replace('T', ' ').slice(0, 19)} UTC`;
    assert.match(line, /│ rehearsal +│/);
    assert.ok(line.includes(utc(rehearsal.started_at)) && line.includes(utc(rehearsal.finished_at)), line);
    assert.match(text.stdout, new RegExp(`leapfrog ledger show 1 --state-dir ${report.stateDir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
    const shown = await leapfrog(['ledger', 'show', '1', '--state-dir', report.stateDir]);
    assert.match(shown.stdout, /^Run 1: chain fakecloud-juno-newton/);

    // A second rehearsal compares each hop with the first's (the real databases are at kilo now: no kilo hops).
    const html = path.join(cloud.state, '..', 'second.html');
    const again = await leapfrog(['rehearse', '--chain', CHAIN, '--dump', ...files, '--state-dir', cloud.state, '--cache-dir', CACHE, '--format', 'json', '--report', html]);
    assert.equal(again.exitCode, 0, again.stderr);
    const second = JSON.parse(again.stdout) as Json;
    assert.equal(second.previous.rehearsal, path.basename(report.stateDir));
    assert.equal(second.hops.length, 9);
    const firstMs = new Map((report.hops as Json[]).map((h) => [`${h.project}@${h.release}`, h.durationMs]));
    for (const h of second.hops) assert.equal(h.previousMs, firstMs.get(`${h.project}@${h.release}`), `${h.project}@${h.release}`);
    const page = readFileSync(html, 'utf8');
    assert.match(page, new RegExp(`Compared with the previous rehearsal of this chain, ${path.basename(report.stateDir)}`));
    assert.equal(page.match(/<span class="delta">[+-]\d/g)?.length, 9, 'a change for each hop');
  });
});

const SERVER = MARIADB_URL;

describe('rehearse --server', { skip: MARIADB_SKIP }, () => {
  test('restores mariadb-dump files (one per database) under a prefix, runs there, drops them, and leaves the real databases untouched', async () => {
    const dir = tempDir('rehearse');
    const tag = `t7${process.pid}${Date.now() % 100000}_`;
    const names = { compute: `${tag}compute`, identity: `${tag}identity`, image: `${tag}image` };
    const target = parseTargetUrl(SERVER);
    const t = target as Extract<typeof target, { kind: 'mysql' }>;
    const client = ['--no-defaults', `-u${t.user}`, `-h${t.host}`, `-P${t.port}`, '--protocol=TCP'];
    const prefix = `lfr${process.pid % 10000}x_`;
    try {
      await createCloud(SERVER, { instances: 40, nullUuids: 2, names });
      const chain = chainVariant('prefixed', (c) => {
        c.projects.compute.databases = { main: names.compute, api: `${tag}compute_api` };
        c.projects.identity.databases = { main: names.identity };
        c.projects.image.databases = { main: names.image };
      });
      const dumps: string[] = [];
      for (const db of Object.values(names)) {
        const file = path.join(dir, `${db}.sql`);
        await execa('mariadb-dump', [...client, '--single-transaction', db, `--result-file=${file}`]);
        dumps.push(file);
      }
      const snapshot = () =>
        withTarget(target, async (s) => {
          const out: Record<string, unknown> = {};
          for (const db of Object.values(names)) out[db] = { fp: (await fingerprint(s, db))?.sha256, rows: await tableRowCounts(s, db) };
          out.api = await s.exists(`${tag}compute_api`);
          return out;
        });
      const before = await snapshot();

      const r = await leapfrog(['rehearse', '--chain', chain, '--dump', ...dumps, '--server', SERVER, '--prefix', prefix, '--state-dir', path.join(dir, 'state'), '--cache-dir', CACHE, '--format', 'json']);
      assert.equal(r.exitCode, 0, r.stderr);
      const report = JSON.parse(r.stdout) as Json;
      assert.equal(report.target.mode, 'server');
      assert.equal(report.target.prefix, prefix);
      assert.equal(report.server.flavour, 'MariaDB', 'the existing server, read as the confined account');
      assert.equal(report.caveat, null, 'an existing server runs with its own settings: no scratch caveat');
      assert.deepEqual(report.dumps.map((d: Json) => d.bytes), report.dumps.map((d: Json) => statSync(d.file).size));
      assert.equal(report.audit.status, 'passed');
      assert.equal(report.hops.length, 12);
      assert.deepEqual(report.versions.compute, { main: 334, api: 20 });
      const instances = report.audit.rows.find((x: Json) => x.table === 'instances');
      assert.deepEqual([instances.before, instances.after], [42, 40]);

      assert.deepEqual(await snapshot(), before, 'the real databases are exactly as they were');
      const left = await execa('mariadb', [...client, '-N', '-e', `SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE '${prefix}%'`]);
      assert.equal(left.stdout.trim(), '', 'the prefixed copies are dropped');

    } finally {
      await execa('mariadb', [...client, '-e', [...Object.values(names), `${tag}compute_api`].map((n) => `DROP DATABASE IF EXISTS \`${n}\`;`).join(' ')]);
    }
  });
});

describe('rehearse --from a live target', () => {
  test('SQLite: the chain\'s files are copied from the live directory; the live databases stay at juno', async () => {
    const cloud = await fakeCloud({ instances: 30 });
    const r = await leapfrog(['rehearse', '--chain', CHAIN, '--from', cloud.db, '--state-dir', cloud.state, '--cache-dir', CACHE, '--format', 'json']);
    assert.equal(r.exitCode, 0, r.stderr);
    const report = JSON.parse(r.stdout) as Json;
    assert.equal(report.hops.length, 12);
    assert.equal(report.audit.status, 'passed');
    assert.equal(scalar(cloud.file('compute'), 'SELECT version FROM migrate_version'), 254);
  });

  test('MariaDB: the live databases copied server to server from one snapshot into a scratch server; the live ones are untouched and no copy is left behind', { skip: MARIADB_SKIP }, async () => {
    const cloud = await fakeCloud({ kind: 'mariadb', instances: 30 });
    try {
      const r = await leapfrog(['rehearse', '--chain', cloud.chain, '--from', cloud.db, '--state-dir', cloud.state, '--cache-dir', CACHE, '--format', 'json']);
      assert.equal(r.exitCode, 0, r.stderr);
      assert.match(r.stderr, new RegExp(`copying ${cloud.names.compute}, .* live from mysql://.* over 4 connections, all from one snapshot`));
      assert.match(r.stderr, /copied \d+ rows \(\d+ MB\) in [\d.]+ s; writers on the source were held \d+ ms by the global read lock/);
      assert.doesNotMatch(r.stderr, /mariadb-dump/);
      const report = JSON.parse(r.stdout) as Json;
      assert.equal(report.hops.length, 12);
      assert.equal(report.audit.status, 'passed');
      assert.equal(await cloud.scalar('compute', 'SELECT version FROM migrate_version'), 254);
      assert.deepEqual(readdirSync(path.join(cloud.state, 'rehearsals')).filter((d) => d.startsWith('from-')), [], 'the copied dumps are removed');
    } finally {
      await cloud.dispose();
    }
  });

  test('MariaDB: an account without RELOAD is told so and gets one mariadb-dump per database instead', { skip: MARIADB_SKIP }, async () => {
    const cloud = await fakeCloud({ kind: 'mariadb', instances: 30 });
    const user = `${cloud.names.compute.replace(/compute$/, '')}ro`;
    const pattern = cloud.names.compute.replace(/compute$/, '').replace(/_/g, '\\_');
    await withMariadb((c) => c.query(`CREATE USER '${user}'@'%' IDENTIFIED BY 'pw'; GRANT SELECT, SHOW VIEW, TRIGGER, LOCK TABLES, EVENT ON \`${pattern}%\`.* TO '${user}'@'%'`));
    try {
      const url = new URL(cloud.db);
      url.username = user;
      url.password = 'pw';
      const r = await leapfrog(['rehearse', '--chain', cloud.chain, '--from', url.toString(), '--state-dir', cloud.state, '--cache-dir', CACHE, '--format', 'json']);
      assert.equal(r.exitCode, 0, r.stderr);
      assert.match(r.stderr, /this account lacks the RELOAD privilege that the brief global read lock of a live copy needs \(FLUSH TABLES WITH READ LOCK\), so each database is dumped on its own with mariadb-dump --single-transaction/);
      assert.match(r.stderr, new RegExp(`copying ${cloud.names.compute} from mysql://`));
      assert.equal((JSON.parse(r.stdout) as Json).audit.status, 'passed');
    } finally {
      await withMariadb((c) => c.query(`DROP USER IF EXISTS '${user}'@'%'`));
      await cloud.dispose();
    }
  });

  test('--dump and --from together, or neither, is an input error', async () => {
    const r = await leapfrog(['rehearse', '--chain', CHAIN]);
    assert.equal(r.exitCode, 2);
    assert.match(r.stderr, /rehearse needs exactly one of --dump FILE\.\.\. .* or --from URL/);
  });
});

describe('a scratch rehearsal cannot reach another server', { skip: MARIADB_SKIP }, () => {
  test('a step that connects over TCP to the server the dump came from fails in the rehearsal and changes nothing there; --allow-network lets it through', async () => {
    const dir = tempDir('rehearse');
    const dump = path.join(dir, 'cloud.sql');
    await writeDump(dump, { instances: 20, nullUuids: 0, seed: 11, prefix: '' });
    // What nova does with a restored nova_api.cell_mappings row: connect to the URL it names, i.e. production.
    const reached = `lf_${Date.now().toString(16)}_reached`;
    const prod = new URL(SERVER);
    const chain = chainVariant('reaches-production', (c) => {
      const kilo = c.releases.find((r: Json) => r.release === 'kilo');
      kilo.steps.unshift({
        project: 'compute',
        env: 'compute-kilo',
        name: 'reach production',
        check: ['sh', '-c', `mariadb --protocol=tcp -h ${prod.hostname} -P ${prod.port || 3306} -u ${prod.username || 'root'} -e 'CREATE DATABASE ${reached}'`],
      });
    });
    const exists = async () => (await withTarget(parseTargetUrl(SERVER), (s) => s.exists(reached)));
    const state = path.join(dir, 'state');
    const r = await leapfrog(['rehearse', '--chain', chain, '--dump', dump, '--state-dir', state, '--cache-dir', CACHE]);
    assert.equal(r.exitCode, 1, r.stderr);
    assert.match(r.stdout, /FAILED kilo\/compute\/1: exited 1/);
    assert.equal(await exists(), false, 'the step reached nothing outside the rehearsal');

    const open = await leapfrog(['rehearse', '--chain', chain, '--dump', dump, '--state-dir', state, '--cache-dir', CACHE, '--allow-network']);
    try {
      assert.equal(await exists(), true, `without isolation the same step reaches the server (the check above can fail):\n${open.stdout}\n${open.stderr}`);
    } finally {
      await withTarget(parseTargetUrl(SERVER), (s) => s.drop([reached]));
    }
  });
});
