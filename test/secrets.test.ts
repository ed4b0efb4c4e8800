/**
 * A password with `@ : / % + = ' "` and a space, through plan,
 * check-migrations, run, ledger and rehearse --server on the real MariaDB:
 * no form of it (raw, percent-encoded every way leapfrog or a toolchain
 * encodes it, option-file, JSON, HTML or shell escaped) reaches stdout,
 * stderr, the ledger, step logs or reports, nor any process's argv while
 * the steps run, though the steps print it in every form on purpose.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { execa } from 'execa';
import { writeDump } from '../fixtures/dump.js';
import { redactUrl } from '../src/database/url.js';
import { containsSecret, maskSecrets, secretForms, streamMasker } from '../src/report/secrets.js';
import { CACHE, fakeCloud, leapfrog, MARIADB_PORT, MARIADB_SKIP, ROOT, tempDir, uniquePrefix, withMariadb, type Cloud } from './helpers.js';

const PASSWORD = `p@ss:w/o%rd+x=1 'q"${randomBytes(3).toString('hex')}`;

test('secretForms: the raw password and every encoding leapfrog or a toolchain writes', () => {
  const forms = secretForms(PASSWORD);
  const tail = PASSWORD.slice(-6);
  for (const f of [
    PASSWORD,
    encodeURIComponent(PASSWORD),
    `p%40ss%3Aw%2Fo%25rd%2Bx%3D1%20%27q%22${tail}`, // RFC 3986 strict (Python quote(s, safe=''))
    `p%40ss%3aw%2fo%25rd%2bx%3d1%20%27q%22${tail}`, // the same, lower-case hex
    `p%40ss%3Aw%2Fo%rd+x%3D1%20'q%22${tail}`, // WHATWG URL userinfo: % + ' kept
    `p%40ss%3Aw%2Fo%25rd%2Bx%3D1+%27q%22${tail}`, // form encoding: space as +
    `p@ss:w/o%rd+x=1 'q\\"${tail}`, // option file, double-quoted; and JSON
    `p@ss:w/o%rd+x=1\\s'q"${tail}`, // option file, bare
    `p@ss:w/o%rd+x=1 &#39;q&quot;${tail}`, // HTML
    `p@ss:w/o%rd+x=1 '\\''q"${tail}`, // shell single-quoted
    `p%40ss%3Aw%2Fo%25rd%2Bx%3D1+'q%22${tail}`, // LiquidJS url_encode
    `p@ss:w/o%25rd+x=1%20'q%22${tail}`, // encodeURI
  ]) {
    assert.ok(forms.includes(f), `${f} is a form`);
  }
  const u = new URL('mysql://h/');
  u.password = PASSWORD;
  assert.ok(forms.includes(u.password), 'what the WHATWG serializer keeps');
  assert.ok(forms.includes(new URLSearchParams({ x: PASSWORD }).toString().slice(2)));
  assert.deepEqual(secretForms(''), []);
});

test('maskSecrets and the stream masker mask every form, also split across chunks', () => {
  const text = secretForms(PASSWORD).map((f) => `<${f}>`).join(' ');
  const masked = maskSecrets(text, [PASSWORD]);
  for (const f of secretForms(PASSWORD)) assert.ok(!masked.includes(f), `${f} masked`);
  assert.equal(masked.split('****').length - 1, secretForms(PASSWORD).length);
  for (let cut = 1; cut < text.length; cut += 7) {
    const m = streamMasker([PASSWORD]);
    const out = m.push(text.slice(0, cut)) + m.push(text.slice(cut)) + m.end();
    assert.equal(out, masked, `cut at ${cut}`);
  }
  assert.ok(containsSecret(`--url=mysql://u:${encodeURIComponent(PASSWORD)}@h`, PASSWORD));
  assert.ok(!containsSecret('--url=mysql://u:****@h', PASSWORD));
});

test('redactUrl masks a password typed with a raw @ or space whole', () => {
  assert.equal(redactUrl('mysql://u:a@b c@host:3306/x'), 'mysql://u:****@host:3306/x');
  assert.equal(redactUrl('mysql://u:p%40ss@h'), 'mysql://u:****@h');
  assert.equal(redactUrl('mysql://u@h:1'), 'mysql://u@h:1');
});

const PRINT = [
  'import json, sys, urllib.parse as u',
  't = open(sys.argv[1]).read()',
  'print(t)',
  "p = [l.split(' = ', 1)[1] for l in t.splitlines() if l.startswith('password = ')][0]",
  "print(json.dumps(p)); print(u.quote(p, safe='')); print(u.quote_plus(p)); print(p.replace(' ', chr(92) + 's'))",
].join('\n');

/** Every form of the password found in `text`. */
function leaks(text: string): string[] {
  return secretForms(PASSWORD).filter((f) => text.includes(f));
}

/** Every file under `dir` but the rendered config files (which must hold the password: they are the toolchain's way in, mode 0600). */
function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) {
      if (e.name !== 'config') out.push(...filesUnder(p));
    } else if (e.isFile()) out.push(p);
  }
  return out;
}

describe('a password with @ : / % + = \' " and a space never shows [mariadb]', { skip: MARIADB_SKIP }, () => {
  const user = `${uniquePrefix()}sec`;
  const dir = tempDir('secrets');
  const marker = path.join(dir, 'failed-once');
  let cloud: Cloud;
  let chain: string;
  const url = `mysql://${user}:${encodeURIComponent(PASSWORD)}@127.0.0.1:${MARIADB_PORT}`;
  const bare = `mysql://${user}@127.0.0.1:${MARIADB_PORT}`;
  const outputs: { what: string; text: string }[] = [];
  const record = (what: string, r: { stdout: string; stderr: string }) => outputs.push({ what, text: r.stdout + r.stderr });

  before(async () => {
    await withMariadb(async (c) => {
      for (const h of ['127.0.0.1', 'localhost']) {
        await c.query('CREATE USER ?@? IDENTIFIED BY ?', [user, h, PASSWORD]);
        // CREATE USER and GRANT OPTION: rehearse --server creates its confined account with them.
        await c.query('GRANT ALL PRIVILEGES ON *.* TO ?@? WITH GRANT OPTION', [user, h]);
      }
    });
    cloud = await fakeCloud({ kind: 'mariadb', instances: 20 });
    // A first step that prints the password in every form it is written in: the raw value, the URL, a quoted option file.
    chain = cloud.variant('leaky', (c) => {
      c.projects.compute.config['leak.conf'] = '[database]\nconnection = {{ db.main.url }}\npassword = {{ db.main.password }}\n';
      c.releases[0].steps.unshift({
        project: 'compute',
        env: 'compute-kilo',
        name: 'leak',
        // Prints the file, then the password as JSON and percent-encoded as Python would; fails the first time,
        // so a failure's tail and error reach the ledger and stderr.
        data: ['sh', '-c', 'python3 -c "$2" "$0" && { [ -e "$1" ] && exit 0; : > "$1"; exit 1; }', "{{ config['leak.conf'] }}", marker, PRINT],
      });
    });
  });

  after(async () => {
    await withMariadb(async (c) => {
      for (const h of ['127.0.0.1', 'localhost']) await c.query('DROP USER IF EXISTS ?@?', [user, h]);
    });
    await cloud?.dispose();
    rmSync(dir, { recursive: true, force: true });
    if (cloud) rmSync(cloud.dir, { recursive: true, force: true });
  });

  const args = () => ['--chain', chain, '--state-dir', cloud.state, '--cache-dir', CACHE];

  test('plan and check-migrations (password in the URL, in an option file)', async () => {
    for (const format of ['text', 'json']) {
      const r = await leapfrog(['plan', ...args(), '--db', url, '--format', format]);
      assert.equal(r.exitCode, 0, r.stderr);
      record(`plan ${format}`, r);
    }
    const cnf = path.join(dir, 'client.cnf');
    writeFileSync(cnf, `[client]\npassword="${PASSWORD.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"\n`, { mode: 0o600 });
    const r = await leapfrog(['check-migrations', ...args(), '--db', bare, '--defaults-file', cnf, '--format', 'json']);
    assert.ok(r.exitCode === 0 || r.exitCode === 1, r.stderr);
    record('check-migrations', r);
    // A wrong password's error names no form of the right one.
    const wrong = await leapfrog(['plan', ...args(), '--db', url.replace('%40', '%41')]);
    assert.equal(wrong.exitCode, 2, wrong.stderr);
    record('plan with a wrong password', wrong);
  });

  test('a step whose argv would carry the password percent-encoded (the URL) is refused by plan, naming the step', async () => {
    const leaky = cloud.variant('url-in-argv', (c) => {
      c.releases[0].steps[1].sync = [...c.releases[0].steps[1].sync, '--connection={{ db.main.url }}'];
    });
    const r = await leapfrog(['plan', '--chain', leaky, '--state-dir', cloud.state, '--cache-dir', CACHE, '--db', url]);
    assert.equal(r.exitCode, 2, r.stderr);
    assert.match(r.stderr, /argument \d+: renders the database password \(raw or encoded\) into the command line/);
    record('plan refusing a URL in argv', r);
  });

  test('run: no child argv carries it while the steps run; output, ledger, logs and ledger show mask it', async () => {
    const env = { LEAPFROG_DB_PASSWORD: PASSWORD };
    const first = await leapfrog(['run', ...args(), '--db', bare], { env });
    assert.equal(first.exitCode, 1, 'the leak step fails the first time');
    assert.match(first.stderr, /\*\*\*\*/, 'its tail is shown, masked');
    record('run (failing)', first);

    // The second run, watched: every process's argv, and the environment of every process but leapfrog itself.
    const child = execa(process.execPath, [path.join(ROOT, 'bin', 'leapfrog.js'), 'run', ...args(), '--db', bare], { reject: false, stdin: 'ignore', env });
    const seen = new Set<string>();
    const bad: string[] = [];
    const watch = setInterval(() => {
      for (const pid of readdirSync('/proc')) {
        if (!/^\d+$/.test(pid)) continue;
        try {
          const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
          if (/compute-manage|identity-manage|image-manage|mariadb|python3/.test(cmd)) seen.add(cmd.split('\0').slice(0, 2).join(' '));
          if (leaks(cmd).length > 0) bad.push(`argv of ${pid}: ${cmd}`);
          // leapfrog itself was given LEAPFROG_DB_PASSWORD, and so is, for an instant, each fork of it before its exec.
          if (!cmd.includes('bin/leapfrog.js') && leaks(readFileSync(`/proc/${pid}/environ`, 'utf8')).length > 0) bad.push(`environment of ${pid}: ${cmd}`);
        } catch {
          // gone, or not ours to read
        }
      }
    }, 5);
    const second = await child;
    clearInterval(watch);
    assert.equal(second.exitCode, 0, String(second.stderr));
    record('run', { stdout: String(second.stdout), stderr: String(second.stderr) });
    assert.deepEqual(bad, []);
    assert.ok([...seen].some((c) => /-manage/.test(c)), `the watch saw the steps' processes: ${[...seen].join(', ')}`);

    for (const runId of ['1', '2']) {
      for (const format of ['text', 'json']) record(`ledger show ${runId} ${format}`, await leapfrog(['ledger', 'show', runId, '--state-dir', cloud.state, '--format', format]));
    }
    record('ledger runs', await leapfrog(['ledger', 'runs', '--state-dir', cloud.state]));

    const logs = filesUnder(cloud.state).filter((f) => f.endsWith('.log'));
    assert.ok(logs.length > 12, 'step logs were written');
    const leakLogs = logs.map((f) => readFileSync(f, 'utf8')).filter((t) => t.includes('python3 -c'));
    assert.ok(leakLogs.length >= 2 && leakLogs.every((t) => (t.match(/\*\*\*\*/g) ?? []).length >= 4), `the leak step's logs show it masked:\n${leakLogs[0]}`);
  });

  test('rehearse --server with --report', async () => {
    const dump = path.join(dir, 'cloud.sql');
    await writeDump(dump, { instances: 10, nullUuids: 0, seed: 5, prefix: '' });
    const rehearsalChain = path.join(ROOT, 'chains', 'fakecloud-juno-newton.yaml');
    const html = path.join(dir, 'report.html');
    const r = await leapfrog(['rehearse', '--chain', rehearsalChain, '--dump', dump, '--server', url, '--state-dir', cloud.state, '--cache-dir', CACHE, '--report', html, '--format', 'json']);
    assert.equal(r.exitCode, 0, r.stderr);
    record('rehearse', r);
    outputs.push({ what: 'rehearsal report', text: readFileSync(html, 'utf8') });
  });

  test('no form of the password anywhere: every command\'s output, the ledger, logs, reports', () => {
    assert.ok(outputs.length >= 10, `${outputs.length} outputs recorded`);
    const found = outputs.flatMap((o) => leaks(o.text).map((f) => `${o.what}: ${f}`));
    const files = filesUnder(cloud.state).concat(filesUnder(dir).filter((f) => !f.endsWith('client.cnf') && statSync(f).size < 50e6));
    for (const f of files) {
      // The ledger (and its WAL) read as bytes: a page holds the text as written.
      const text = readFileSync(f).toString('latin1') + readFileSync(f, 'utf8');
      for (const l of leaks(text)) found.push(`${path.relative(dir, f)}: ${l}`);
    }
    assert.ok(files.some((f) => f.endsWith('ledger.sqlite3')), 'the ledger was checked');
    assert.deepEqual(found, []);
  });
});
