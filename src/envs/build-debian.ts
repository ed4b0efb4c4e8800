import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { LeapfrogError } from '../errors.js';
import { clientEnvironment } from '../sandbox/child-env.js';
import { fetchToFile } from './fetch.js';

/**
 * A Debian root filesystem for an env, built by mmdebstrap
 * (https://manpages.debian.org/mmdebstrap). mmdebstrap keeps apt's state,
 * configuration and keyring choice inside the build (its own APT_CONFIG and
 * the target's /var/lib/apt), so the host's apt is neither read for sources
 * nor changed: the sources are exactly the lines given here.
 *
 * Reproducible: with SOURCE_DATE_EPOCH set, mmdebstrap's output is "the same
 * across multiple runs with the same options and mirror content" (its man
 * page, ENVIRONMENT), once /etc/resolv.conf and /etc/hostname, copied from
 * the host, are removed. The source date defaults to the newest `Date:` of
 * the suites' InRelease files: the mirror content that decides the packages
 * also decides the date, so a rebuild gives the same bytes until the archive
 * changes.
 */

export interface DebianBuild {
  suite: string;
  packages: readonly string[];
  mirror: string;
  components: readonly string[];
  variant: string;
  /** A released suite's -updates and -security too (false: the suite alone, as its last point release left it). */
  updates: boolean;
}

export const DEFAULT_MIRROR = 'http://deb.debian.org/debian';

/**
 * Released suites, whose fixes arrive in SUITE-updates and SUITE-security
 * (https://wiki.debian.org/SourcesList#Example_sources.list); unstable and
 * testing have neither that a build should use.
 */
const STABLE_SUITES = new Set(['bullseye', 'bookworm', 'trixie']);

/** dpkg filters: documentation, man pages and translations never reach the tree (dpkg(1), --path-exclude). */
const TRIM = ['path-exclude=/usr/share/doc/*', 'path-include=/usr/share/doc/*/copyright', 'path-exclude=/usr/share/man/*', 'path-exclude=/usr/share/info/*', 'path-exclude=/usr/share/locale/*', 'path-include=/usr/share/locale/locale.alias'];

/**
 * Byte-compiled Python that is the same from build to build. Before 3.11,
 * marshal flags an object for back-reference whenever its reference count is
 * above one at the moment it is written (FLAG_REF, marshal.c w_ref), so the
 * .pyc files py3compile writes at install depend on what else that process
 * held: bullseye's python3.9 gives a few different bytes per build even with
 * PYTHONHASHSEED=0 (https://github.com/python/cpython/issues/78274, fixed in
 * 3.11). marshal format 2 writes no back-references at all (w_ref returns
 * early below version 3), so each such .pyc is rewritten by its own
 * interpreter, inside the tree, as header + marshal.dumps(code, 2): the same
 * code objects, written from their values alone. A frozenset constant
 * (`x in {"a", "b"}`) is written in its slot order, which depends on the hash
 * seed and on the order its elements were inserted (the order py3compile's
 * random seed wrote them), so each is rebuilt from its sorted elements under
 * hash seed 0 first. Python reads every marshal version; code objects intern
 * their names when built, so only the files grow a little. Interpreters from
 * 3.11 are left alone: their output is already reproducible.
 */
const PYC_REWRITE = [
  'import marshal, os, sys',
  'tag = ".cpython-%d%d." % sys.version_info[:2]',
  'code = type(compile("", "", "exec"))',
  'def canon(o):',
  '    if isinstance(o, frozenset): return frozenset(sorted((canon(x) for x in o), key=lambda x: (type(x).__name__, repr(x))))',
  '    if type(o) is tuple: return tuple(canon(x) for x in o)',
  '    if type(o) is code: return o.replace(co_consts=canon(o.co_consts))',
  '    return o',
  'for top, dirs, files in os.walk("/"):',
  '    dirs[:] = sorted(d for d in dirs if os.path.join(top, d) not in ("/proc", "/sys", "/dev"))',
  '    for f in sorted(files):',
  '        if not f.endswith(".pyc") or tag not in f: continue',
  '        p = os.path.join(top, f)',
  '        with open(p, "rb") as h: data = h.read()',
  '        try: new = data[:16] + marshal.dumps(canon(marshal.loads(data[16:])), 2)',
  '        except Exception as e: print("leapfrog: kept %s as shipped: %s" % (p, e)); continue',
  '        if new == data: continue',
  '        with open(p + ".leapfrog-tmp", "wb") as h: h.write(new)',
  '        os.chmod(p + ".leapfrog-tmp", os.stat(p).st_mode & 0o7777)',
  '        os.replace(p + ".leapfrog-tmp", p)',
].join('\n');

const PYC_HOOK = [
  'for py in "$1"/usr/bin/python3.[0-9] "$1"/usr/bin/python3.10; do',
  '  [ -x "$py" ] || continue',
  // PYC_REWRITE holds no single quote, so it sits whole inside sh's single quotes. Not -I or -E:
  // both make Python ignore PYTHONHASHSEED, and frozensets would be written in a random order.
  // The hook's environment is leapfrog's clean one (no PYTHONPATH, PYTHONHOME).
  `  PYTHONHASHSEED=0 chroot "$1" "/usr/bin/\${py##*/}" -S -B -c '${PYC_REWRITE}' || exit 1`,
  'done',
].join('\n');

/** The sources.list lines of a build: the suite, and its -updates and -security for a released suite. */
export function sourceLines(b: DebianBuild): string[] {
  const comps = b.components.join(' ');
  const lines = [`deb ${b.mirror} ${b.suite} ${comps}`];
  if (STABLE_SUITES.has(b.suite) && b.updates) {
    lines.push(`deb ${b.mirror} ${b.suite}-updates ${comps}`);
    // The security archive sits beside the main one on Debian's mirrors (deb.debian.org/debian-security).
    if (/\/debian\/?$/.test(b.mirror)) lines.push(`deb ${b.mirror.replace(/\/?$/, '')}-security ${b.suite}-security ${comps}`);
  }
  return lines;
}

export function mmdebstrapArgv(b: DebianBuild, target: string): string[] {
  return [
    'mmdebstrap',
    '--mode=root',
    `--variant=${b.variant}`,
    `--components=${b.components.join(',')}`,
    ...(b.packages.length > 0 ? [`--include=${b.packages.join(',')}`] : []),
    ...TRIM.map((t) => `--dpkgopt=${t}`),
    // Copied from the host by mmdebstrap; they would make the tree depend on the machine that built it.
    '--customize-hook=rm -f "$1/etc/resolv.conf" "$1/etc/hostname"',
    `--customize-hook=${PYC_HOOK}`,
    b.suite,
    target,
    ...sourceLines(b),
  ];
}

/** The newest Date: of the build's InRelease files, as seconds since the epoch. */
export async function archiveDate(b: DebianBuild, tmpDir: string, signal?: AbortSignal): Promise<number> {
  let newest = 0;
  for (const [i, line] of sourceLines(b).entries()) {
    const [, mirror, suite] = line.split(' ');
    const url = `${mirror!.replace(/\/$/, '')}/dists/${suite}/InRelease`;
    const file = path.join(tmpDir, `InRelease-${i}`);
    try {
      await fetchToFile(url, file, { maxBytes: 16 * 1024 * 1024, retries: 2, signal });
    } catch (err) {
      throw new LeapfrogError('input', `--debian ${b.suite}: cannot read ${url} (${(err as Error).message}); check the suite name and --mirror`, { cause: err });
    }
    const m = /^Date: (.+)$/m.exec(await readFile(file, 'utf8'));
    const t = m ? Date.parse(m[1]!) : NaN;
    if (Number.isNaN(t)) throw new LeapfrogError('input', `${url} has no Date: field leapfrog can read; is ${mirror} a Debian mirror?`);
    newest = Math.max(newest, Math.floor(t / 1000));
  }
  return newest;
}

/** Run mmdebstrap into `target` (which must not exist); its output goes to `log`. */
export async function runMmdebstrap(b: DebianBuild, target: string, sourceDateEpoch: number, log: (line: string) => void, signal?: AbortSignal): Promise<void> {
  if (process.getuid?.() !== 0) {
    throw new LeapfrogError('input', 'envs build --debian runs mmdebstrap in root mode, so that every file of the tree can be read and packed with its real modes; run it as root (sudo, or in a build container)');
  }
  const argv = mmdebstrapArgv(b, target);
  const child = execa(argv[0]!, argv.slice(1), {
    env: clientEnvironment({ vars: { SOURCE_DATE_EPOCH: String(sourceDateEpoch) } }),
    extendEnv: false,
    stdin: 'ignore',
    all: true,
    buffer: false,
    reject: false,
    cancelSignal: signal,
  });
  const tail: string[] = [];
  child.all?.setEncoding('utf8');
  let partial = '';
  child.all?.on('data', (chunk: string) => {
    const lines = (partial + chunk).split('\n');
    partial = lines.pop() ?? '';
    for (const l of lines) {
      log(l);
      tail.push(l);
      if (tail.length > 15) tail.shift();
    }
  });
  const r = await child;
  if (signal?.aborted) throw new LeapfrogError('interrupted', 'envs build: interrupted; nothing was written');
  if ((r as { code?: string }).code === 'ENOENT' || /ENOENT/.test(String(r.shortMessage ?? ''))) {
    throw new LeapfrogError('input', 'envs build --debian needs mmdebstrap: install it (apt-get install mmdebstrap debian-archive-keyring)');
  }
  if (r.exitCode !== 0) {
    throw new LeapfrogError('input', `mmdebstrap failed (${r.exitCode === undefined ? r.shortMessage : `exit ${r.exitCode}`}) building ${b.suite} with ${b.packages.join(', ') || 'no extra packages'}; its last lines:`, { details: tail.map((l) => '  ' + l) });
  }
}

/** name, version and architecture of every package installed in the tree, sorted by name. */
export async function installedPackages(target: string): Promise<{ name: string; version: string; arch: string }[]> {
  const r = await execa('dpkg-query', [`--admindir=${path.join(target, 'var/lib/dpkg')}`, '-W', '-f', '${Package}\t${Version}\t${Architecture}\n'], {
    env: clientEnvironment(),
    extendEnv: false,
    stdin: 'ignore',
  });
  return String(r.stdout)
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => {
      const [name, version, arch] = l.split('\t');
      return { name: name!, version: version!, arch: arch! };
    })
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}
