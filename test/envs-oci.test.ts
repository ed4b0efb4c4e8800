/**
 * `envs build --oci`, with real parts only: an OCI image layout (and a
 * `docker save` archive) is made here with node-tar from the host's /bin/sh
 * and the libraries `ldd` names, two layers deep (a whiteout, an opaque
 * directory), turned into a rootfs env, served by a real local HTTP server,
 * provisioned into a fresh cache, and a step runs in it under bubblewrap.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { after, before, test } from 'node:test';
import Database from 'better-sqlite3';
import * as tar from 'tar';
import { parse, stringify } from 'yaml';
import { startTarballServer, type TarballServer } from '../fixtures/http-server.js';
import { leapfrog, tempDir } from './helpers.js';

type Json = Record<string, any>;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const cleanup: string[] = [];
let server: TarballServer;
let base: string;

/** A tree with the host's /bin/sh and the shared libraries it loads, at the same paths. */
function shellTree(dir: string): void {
  const files = ['/bin/sh', ...[...execFileSync('ldd', ['/bin/sh'], { encoding: 'utf8' }).matchAll(/(\/\S+) \(0x/g)].map((m) => m[1]!)];
  for (const f of files) {
    mkdirSync(path.join(dir, path.dirname(f)), { recursive: true });
    copyFileSync(f, path.join(dir, f));
  }
}

/** A layer tarball of `dir`'s entries (sorted, portable); gzip'ed when asked. */
async function layerOf(dir: string, gzip = false): Promise<Buffer> {
  const out = `${dir}.tar`;
  const names = readdirSync(dir).sort();
  await tar.c({ file: out, cwd: dir, portable: true, gzip }, names);
  return readFileSync(out);
}

/** A tar made header by header, for entries no real tree can give (`../x`). */
function rawTar(entries: { path: string; type?: string; body?: string; linkpath?: string }[]): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    const body = Buffer.from(e.body ?? '');
    const h = new tar.Header({ path: e.path, type: (e.type ?? 'File') as any, size: body.length, mode: 0o644, mtime: new Date(1_700_000_000_000), linkpath: e.linkpath ?? '' } as any);
    const block = Buffer.alloc(512);
    h.encode(block, 0);
    parts.push(block, body, Buffer.alloc((512 - (body.length % 512)) % 512));
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

const CONFIG = { architecture: 'amd64', os: 'linux', created: '2024-01-02T03:04:05Z', config: { Env: ['PATH=/usr/local/bin:/usr/bin:/bin', 'GREETING=hello from oci'], WorkingDir: '/opt/app', User: '' } };

/** An OCI image layout at `dir` from layer blobs and a config. */
function ociLayout(dir: string, layers: { data: Buffer; gzip: boolean }[], config: Json = CONFIG): void {
  mkdirSync(path.join(dir, 'blobs', 'sha256'), { recursive: true });
  const put = (b: Buffer) => {
    writeFileSync(path.join(dir, 'blobs', 'sha256', sha(b)), b);
    return { digest: `sha256:${sha(b)}`, size: b.length };
  };
  const cfg = put(Buffer.from(JSON.stringify({ ...config, rootfs: { type: 'layers', diff_ids: [] } })));
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...cfg },
      layers: layers.map((l) => ({ mediaType: `application/vnd.oci.image.layer.v1.tar${l.gzip ? '+gzip' : ''}`, ...put(l.data) })),
    }),
  );
  const m = put(manifest);
  writeFileSync(path.join(dir, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', ...m }] }));
  writeFileSync(path.join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
}

let layer1: Buffer;
let layer2: Buffer;

before(async () => {
  server = await startTarballServer();
  base = tempDir('oci');
  cleanup.push(base);
  // Layer 1: a shell, two files in etc, two in opt/app.
  const l1 = path.join(base, 'l1');
  shellTree(l1);
  mkdirSync(path.join(l1, 'etc'));
  mkdirSync(path.join(l1, 'opt', 'app'), { recursive: true });
  writeFileSync(path.join(l1, 'etc', 'gone.txt'), 'deleted by layer 2\n');
  writeFileSync(path.join(l1, 'etc', 'keep.txt'), 'kept\n');
  writeFileSync(path.join(l1, 'opt', 'app', 'old-1.txt'), 'hidden by the opaque dir\n');
  writeFileSync(path.join(l1, 'opt', 'app', 'old-2.txt'), 'hidden by the opaque dir\n');
  layer1 = await layerOf(l1, true);
  // Layer 2: a whiteout for etc/gone.txt, opt/app made opaque with one new file.
  const l2 = path.join(base, 'l2');
  mkdirSync(path.join(l2, 'etc'), { recursive: true });
  mkdirSync(path.join(l2, 'opt', 'app'), { recursive: true });
  writeFileSync(path.join(l2, 'etc', '.wh.gone.txt'), '');
  writeFileSync(path.join(l2, 'opt', 'app', '.wh..wh..opq'), '');
  writeFileSync(path.join(l2, 'opt', 'app', 'new.txt'), 'from layer 2\n');
  layer2 = await layerOf(l2);
});

after(async () => {
  await server.close();
  for (const d of cleanup) rmSync(d, { recursive: true, force: true });
});

/** The tar inside what envs build wrote (NAME.tar.zst by default): node-tar reads no zstd on Node 20. */
function plainTar(tarball: string): string {
  if (!tarball.endsWith('.zst')) return tarball;
  const out = tarball.replace(/\.zst$/, '');
  writeFileSync(out, execFileSync('zstd', ['-d', '-c', tarball], { maxBuffer: 1 << 30 }));
  return out;
}

const build = (archive: string, name: string, out: string) => leapfrog(['envs', 'build', '--oci', archive, '--name', name, '--out', out, '--format', 'json']);

test('an OCI layout (as a tar) becomes a rootfs env whose step, provisioned over HTTP, runs under bubblewrap: whiteout, opaque dir and Env applied', async () => {
  const dir = path.join(base, 'case-ok');
  ociLayout(path.join(dir, 'layout'), [{ data: layer1, gzip: true }, { data: layer2, gzip: false }]);
  await tar.c({ file: path.join(dir, 'image.tar'), cwd: path.join(dir, 'layout'), portable: true }, ['oci-layout', 'index.json', 'blobs']);
  const r = await build(path.join(dir, 'image.tar'), 'oci-app', path.join(dir, 'out'));
  assert.equal(r.exitCode, 0, r.stderr);
  const built = JSON.parse(r.stdout) as Json;
  assert.equal(built.sourceDateEpoch, Date.parse(CONFIG.created) / 1000, 'the source date is the config\'s created');
  const again = await build(path.join(dir, 'image.tar'), 'oci-app', path.join(dir, 'out2'));
  assert.equal(again.exitCode, 0, again.stderr);
  assert.equal((JSON.parse(again.stdout) as Json).sha256, built.sha256, 'two builds of the same image give the same env');
  const fromDir = await build(path.join(dir, 'layout'), 'oci-app', path.join(dir, 'out3'));
  assert.equal(fromDir.exitCode, 0, fromDir.stderr);
  assert.equal((JSON.parse(fromDir.stdout) as Json).entries, built.entries, 'the layout directory gives the same tree as its tar');

  const doc = parse(readFileSync(built.envFile, 'utf8')) as Json;
  assert.equal(doc.kind, 'rootfs');
  assert.deepEqual(doc.path, ['usr/local/bin', 'usr/bin', 'bin']);
  assert.deepEqual(doc.vars, { GREETING: 'hello from oci' });
  assert.equal(doc.build.workingDir, '/opt/app');
  assert.equal(doc.build.format, 'oci');
  const names: string[] = [];
  await tar.t({ file: plainTar(built.tarball), onReadEntry: (e) => names.push(e.path) });
  assert.ok(names.includes('etc/keep.txt') && names.includes('opt/app/new.txt'), names.join(' '));
  for (const n of ['etc/gone.txt', 'etc/.wh.gone.txt', 'opt/app/old-1.txt', 'opt/app/.wh..wh..opq']) assert.ok(!names.includes(n), `${n} is in the env`);

  // Served over HTTP, provisioned into a fresh cache by a run, a step under bwrap.
  const envs = path.join(dir, 'envs');
  mkdirSync(envs);
  server.serve(path.basename(built.tarball), built.tarball);
  writeFileSync(path.join(envs, 'oci-app.yaml'), stringify({ ...doc, source: { url: server.url(path.basename(built.tarball)), sha256: doc.source.sha256 } }));
  const db = path.join(dir, 'db');
  mkdirSync(db);
  const d = new Database(path.join(db, 'app.sqlite3'));
  d.exec('CREATE TABLE ver (v INTEGER); INSERT INTO ver VALUES (1)');
  d.close();
  const script = [
    'if test -e /etc/gone.txt; then echo "gone: present"; else echo "gone: absent"; fi',
    'read k < /etc/keep.txt; echo "keep: $k"',
    'for f in /opt/app/*; do echo "app: $f"; done',
    'echo "greeting: $GREETING"',
    'echo "PATH=$PATH"',
    'if touch /opt/app/x 2>/dev/null; then echo "WROTE /opt/app"; else echo "read-only /opt/app"; fi',
  ].join('\n');
  const chain = path.join(dir, 'chain.yaml');
  writeFileSync(
    chain,
    stringify({
      chain: 'oci-tiny',
      envs,
      projects: { app: { databases: { main: 'app' }, version: { main: { kind: 'sql', query: 'SELECT v FROM ver', numeric: true } }, start: { main: 1 } } },
      releases: [{ release: 'r1', steps: [{ project: 'app', env: 'oci-app', name: 'look around', check: ['sh', '-c', script] }] }],
    }),
  );
  const run = await leapfrog(['run', '--chain', chain, '--db', `sqlite:${db}`, '--state-dir', path.join(dir, 'state'), '--cache-dir', path.join(dir, 'cache'), '--format', 'json']);
  assert.equal(run.exitCode, 0, run.stderr + run.stdout);
  const runDir = (JSON.parse(run.stdout) as Json).runDir as string;
  const log = readFileSync(path.join(runDir, 'logs', readdirSync(path.join(runDir, 'logs')).find((f) => f.endsWith('-r1-app-1.log'))!), 'utf8');
  assert.match(log, /^gone: absent$/m, log);
  assert.match(log, /^keep: kept$/m, log);
  assert.match(log, /^app: \/opt\/app\/new\.txt$/m, log);
  assert.doesNotMatch(log, /old-[12]\.txt/, log);
  assert.match(log, /^greeting: hello from oci$/m, log);
  assert.match(log, /^PATH=\/usr\/local\/bin:\/usr\/bin:\/bin(:|$)/m, log);
  assert.match(log, /^read-only \/opt\/app$/m, log);
});

test('a layer with an escaping entry is refused with exit 2, nothing written outside or in --out', async () => {
  const outside = path.join(base, 'outside');
  mkdirSync(outside);
  const cases: [string, Buffer[]][] = [
    ['dotdot', [layer1, rawTar([{ path: '../escaped', body: 'x' }])]],
    ['absolute', [layer1, rawTar([{ path: `${outside}/escaped`, body: 'x' }])]],
    ['symlink then file, one layer', [rawTar([{ path: 'esc', type: 'SymbolicLink', linkpath: outside }, { path: 'esc/escaped', body: 'x' }])]],
    ['symlink in layer 1, file through it in layer 2', [rawTar([{ path: 'esc', type: 'SymbolicLink', linkpath: outside }]), rawTar([{ path: 'esc/escaped', body: 'x' }])]],
    ['symlink in layer 1, whiteout through it in layer 2', [rawTar([{ path: 'esc', type: 'SymbolicLink', linkpath: outside }, { path: 'victim', body: 'x' }]), rawTar([{ path: 'esc/.wh.victim', body: '' }])]],
  ];
  writeFileSync(path.join(outside, 'victim'), 'must stay\n');
  for (const [what, layers] of cases) {
    const dir = path.join(base, `case-${what.replace(/\W+/g, '-')}`);
    ociLayout(path.join(dir, 'layout'), layers.map((data) => ({ data, gzip: false })));
    const r = await build(path.join(dir, 'layout'), 'bad', path.join(dir, 'out'));
    assert.equal(r.exitCode, 2, `${what}: ${r.stderr}`);
    assert.match(r.stderr, /--oci .*layer \d refused: .*nothing was written/, `${what}: ${r.stderr}`);
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack');
    assert.deepEqual(readdirSync(path.join(dir, 'out')), [], `${what}: --out is left empty`);
    assert.ok(!existsSync(path.join(base, 'escaped')) && !existsSync(path.join(outside, 'escaped')), `${what}: written outside`);
    assert.equal(readFileSync(path.join(outside, 'victim'), 'utf8'), 'must stay\n', what);
  }
  // A tar of a layout whose blobs/ is a symlink out: the layout's own files are never read through it.
  const dir = path.join(base, 'case-linked-blobs');
  ociLayout(path.join(dir, 'real'), [{ data: layer1, gzip: true }]);
  mkdirSync(path.join(dir, 'layout'));
  for (const f of ['index.json', 'oci-layout']) copyFileSync(path.join(dir, 'real', f), path.join(dir, 'layout', f));
  symlinkSync(path.join(dir, 'real', 'blobs'), path.join(dir, 'layout', 'blobs'));
  const linked = await build(path.join(dir, 'layout'), 'linked', path.join(dir, 'out'));
  assert.equal(linked.exitCode, 2, linked.stderr);
  assert.match(linked.stderr, /blobs is a symlink/);
});

test('a blob whose sha256 is not its digest is refused, naming it', async () => {
  const dir = path.join(base, 'case-digest');
  ociLayout(path.join(dir, 'layout'), [{ data: layer1, gzip: true }, { data: layer2, gzip: false }]);
  const blob = path.join(dir, 'layout', 'blobs', 'sha256', sha(layer2));
  writeFileSync(blob, Buffer.concat([layer2.subarray(0, 600), Buffer.from('tampered'), layer2.subarray(608)]));
  const r = await build(path.join(dir, 'layout'), 'tampered', path.join(dir, 'out'));
  assert.equal(r.exitCode, 2, r.stderr);
  assert.match(r.stderr, new RegExp(`layer 2: blobs/sha256/${sha(layer2)} has sha256 [0-9a-f]{64}, not the digest that names it`));
  assert.deepEqual(readdirSync(path.join(dir, 'out')), []);
});

test('a docker save archive: layers checked against the config\'s diff_ids and applied with their whiteouts', async () => {
  const dir = path.join(base, 'case-docker');
  const save = path.join(dir, 'save');
  const plain1 = gunzipSync(layer1);
  const config = Buffer.from(JSON.stringify({ ...CONFIG, config: { ...CONFIG.config, User: 'nova' }, rootfs: { type: 'layers', diff_ids: [plain1, layer2].map((l) => `sha256:${sha(l)}`) } }));
  for (const [i, l] of [plain1, layer2].entries()) {
    mkdirSync(path.join(save, `l${i}`), { recursive: true });
    writeFileSync(path.join(save, `l${i}`, 'layer.tar'), l);
  }
  writeFileSync(path.join(save, `${sha(config)}.json`), config);
  writeFileSync(path.join(save, 'manifest.json'), JSON.stringify([{ Config: `${sha(config)}.json`, RepoTags: ['app:1'], Layers: ['l0/layer.tar', 'l1/layer.tar'] }]));
  await tar.c({ file: path.join(dir, 'app.tar'), cwd: save, portable: true }, readdirSync(save).sort());
  const r = await leapfrog(['envs', 'build', '--oci', path.join(dir, 'app.tar'), '--out', path.join(dir, 'out'), '--format', 'json']);
  assert.equal(r.exitCode, 0, r.stderr);
  assert.match(r.stderr, /the image's User is nova: steps run as the user leapfrog runs as/);
  const built = JSON.parse(r.stdout) as Json;
  assert.equal(built.env, 'app', 'the name defaults to the archive\'s');
  const doc = parse(readFileSync(built.envFile, 'utf8')) as Json;
  assert.equal(doc.build.format, 'docker');
  assert.equal(doc.build.user, 'nova');
  const names: string[] = [];
  await tar.t({ file: plainTar(built.tarball), onReadEntry: (e) => names.push(e.path) });
  assert.ok(names.includes('opt/app/new.txt') && names.includes('etc/keep.txt') && !names.includes('etc/gone.txt') && !names.includes('opt/app/old-2.txt'), names.join(' '));

  // A layer that does not match its diff_id.
  writeFileSync(path.join(save, 'l1', 'layer.tar'), Buffer.concat([layer2, Buffer.alloc(512)]));
  const bad = await leapfrog(['envs', 'build', '--oci', save, '--name', 'bad', '--out', path.join(dir, 'out2')]);
  assert.equal(bad.exitCode, 2, bad.stderr);
  assert.match(bad.stderr, /layer 2 \(l1\/layer\.tar\): sha256 [0-9a-f]{64}, not the config's diff_id/);
});
