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

/** The sources.list lines of a build: the suite, and its -updates and -security for a released suite. */
export function sourceLines(b: DebianBuild): string[] {
  const comps = b.components.join(' ');
  const lines = [`deb ${b.mirror} ${b.suite} ${comps}`];
  if (STABLE_SUITES.has(b.suite)) {
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
