/**
 * The header pass: what an env tarball may contain, decided from its headers
 * alone, before a byte of it is written (Python's tarfile `data` filter,
 * Lib/tarfile.py, is the model). `Planner` is pure: it takes the entries'
 * headers in archive order and returns the plan the writer follows, or throws
 * UnsafeTarball naming the first entry it refuses. Refused:
 *
 * - names that are absolute or contain `..` (CVE-2007-4559; node-tar
 *   CVE-2021-32804 stripped `////etc` to a relative path, so absoluteness is
 *   judged on the raw name, before any normalising);
 * - a name that passes through a symlink of the archive, whichever comes
 *   first (node-tar CVE-2021-32803, -37701, -37712: a symlink planted where a
 *   directory was, or will be, expected);
 * - a path that appears twice, unless both entries are directories: a file
 *   replaced by a directory, a symlink replaced by a directory, a link
 *   re-pointed, `tar -r` appends (each would make the tree depend on the order
 *   of writes, which is how delayed links were abused in GNU tar);
 * - a hard link to anything but a regular file earlier in the archive, its
 *   target read from the archive root both when checked and when linked
 *   (node-tar CVE-2026-24842 checked one and linked the other);
 * - devices, FIFOs, sparse files and any other type; reserved names (the
 *   manifest); names deeper, longer or more numerous than the limits.
 *
 * Symlink targets are stored verbatim and may be absolute or point anywhere.
 * That is a decision, not an omission: a root filesystem is full of them
 * (/etc/alternatives/*, /usr/bin/python3 -> python3.11, /lib -> usr/lib) and
 * so is a venv (bin/python3 -> /usr/bin/python3.11); Python's data filter
 * refuses them and so cannot unpack either. What makes them safe here is the
 * writer: it creates every symlink last, after every other entry, on a path
 * whose parents are directories it made itself, with symlink(2), which never
 * follows the name it creates; nothing is ever written, chmod'ed or
 * timestamped through a symlink, so a target pointing outside is only ever
 * read by the toolchain at run time. An absolute target is resolved by
 * whoever reads it: inside the sandbox of a root-filesystem env the tree is
 * `/`, so /etc/alternatives/python resolves inside the env; a plain env runs
 * on the host and its absolute targets resolve on the host, as a venv's do.
 *
 * Modes follow the data filter too: setuid, setgid, sticky and group/other
 * write bits are dropped, files stay readable and directories traversable by
 * their owner (who must be able to verify and remove them). Owners, xattrs
 * and file capabilities are not restored.
 */

export interface ExtractLimits {
  /** Sum of the regular files' sizes; also the largest tarball a download may fetch. */
  maxBytes: number;
  maxEntries: number;
}

/** Generous for a venv or a root filesystem (a few GB, a few hundred thousand files); env files cannot raise it, the CLI can. */
export const DEFAULT_LIMITS: ExtractLimits = { maxBytes: 8 * 1024 ** 3, maxEntries: 500_000 };

/** Not configurable: no real tree comes near them, and each bounds work a crafted archive could ask for. */
export const MAX_DEPTH = 128;
/** PATH_MAX less the terminating NUL (Linux, limits.h), for names and symlink targets. */
export const MAX_NAME_BYTES = 4095;
/** NAME_MAX on every Linux filesystem we unpack to. */
export const MAX_COMPONENT_BYTES = 255;

/** The manifest leapfrog writes at the root of every unpacked env. */
export const MANIFEST = '.leapfrog-manifest.json';

/** Raised when a tarball is refused; the store turns it into a LeapfrogError naming the env. */
export class UnsafeTarball extends Error {}

export type Kind = 'root' | 'dir' | 'file' | 'hardlink' | 'symlink';

/** One entry's header as the tar parser read it. */
export interface Header {
  path: string;
  type: string;
  size: number;
  mode?: number | undefined;
  mtime?: Date | undefined;
  linkpath?: string | undefined;
  /** A GNU sparse file (a PAX header with GNU.sparse.* keys). */
  sparse?: boolean | undefined;
}

export interface PlannedEntry {
  /** The header as read: the writer's second pass must see exactly this again. */
  header: Header;
  kind: Kind;
  /** Normalised, relative to the env root, `/`-separated ('' for the root). */
  name: string;
  /** The mode to give it (files and directories). */
  mode: number;
  mtime: Date | undefined;
  /** symlink: the target, verbatim; hardlink: the normalised name of the file it links to. */
  target?: string | undefined;
}

export interface Plan {
  entries: PlannedEntry[];
  /** Every directory to create (named by an entry or implied by a name below it), parents first. */
  dirs: string[];
  /** Files that a hard link names: the writer must finish them before linking. */
  linkTargets: Set<string>;
  files: number;
  bytes: number;
}

const KINDS: Record<string, Kind> = { File: 'file', OldFile: 'file', ContiguousFile: 'file', Directory: 'dir', SymbolicLink: 'symlink', Link: 'hardlink' };

/** A name as it may be shown on a terminal: control characters escaped, very long names cut. */
export function show(name: string): string {
  // eslint-disable-next-line no-control-regex
  const safe = name.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
  return safe.length > 160 ? `${safe.slice(0, 80)}…${safe.slice(-40)} (${Buffer.byteLength(name)} bytes)` : safe;
}

/** The normalised name (components without '' and '.'), or why the raw name is refused. */
export function normalise(raw: string, what = 'name'): { name: string } | { problem: string } {
  // Judged before normalising: `////etc/passwd` must not become `etc/passwd`.
  if (raw.startsWith('/')) return { problem: `absolute ${what}` };
  if (raw.includes('\0')) return { problem: `NUL byte in the ${what}` };
  if (Buffer.byteLength(raw) > MAX_NAME_BYTES) return { problem: `${what} longer than ${MAX_NAME_BYTES} bytes` };
  const parts = raw.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) return { problem: `".." in the ${what}` };
  if (parts.length > MAX_DEPTH) return { problem: `${what} ${parts.length} directories deep (limit ${MAX_DEPTH})` };
  if (parts.some((p) => Buffer.byteLength(p) > MAX_COMPONENT_BYTES)) return { problem: `a component of the ${what} is longer than ${MAX_COMPONENT_BYTES} bytes` };
  const name = parts.join('/');
  // The same string when nothing changed: a plan holds one per entry.
  return { name: name === raw ? raw : name };
}

/** The mode an entry gets: the archive's, less setuid/setgid/sticky and group/other write; owner access kept. */
export function safeMode(kind: 'dir' | 'file', mode: number | undefined): number {
  if (kind === 'dir') return ((mode ?? 0o755) & 0o755) | 0o700;
  return ((mode ?? 0o644) & 0o755) | 0o400;
}

const article = (k: Kind) => ({ root: 'the root', dir: 'a directory', file: 'a file', hardlink: 'a hard link', symlink: 'a symlink' })[k];

/** Why a single header is refused, whatever came before it (pure), or undefined. */
export function headerProblem(h: Header): string | undefined {
  if (h.sparse) return `${show(h.path)}: a GNU sparse file; leapfrog does not unpack sparse entries (rebuild the tarball without --sparse)`;
  if (!(h.type in KINDS)) {
    const kind = ['CharacterDevice', 'BlockDevice', 'FIFO'].includes(h.type) ? 'are not allowed in an env' : 'are not supported';
    return `${show(h.path)}: ${h.type} entries ${kind}`;
  }
  const n = normalise(h.path);
  if ('problem' in n) return `${show(h.path)}: ${n.problem}`;
  if (n.name === '' && h.type !== 'Directory') return `${show(h.path)}: names the env's root but is not a directory`;
  if (n.name.split('/')[0]!.startsWith('.leapfrog-')) return `${show(h.path)}: a name leapfrog reserves for itself (${MANIFEST} is written after unpacking)`;
  if (h.type === 'SymbolicLink') {
    const t = h.linkpath ?? '';
    if (t === '') return `${show(h.path)}: symlink with an empty target`;
    if (t.includes('\0') || Buffer.byteLength(t) > MAX_NAME_BYTES) return `${show(h.path)}: symlink target longer than ${MAX_NAME_BYTES} bytes`;
  }
  if (h.type === 'Link') {
    const t = normalise(h.linkpath ?? '', 'hard link target');
    if ('problem' in t) return `${show(h.path)}: hard link to ${show(h.linkpath ?? '')}: ${t.problem}`;
    if (t.name === '') return `${show(h.path)}: hard link to the env's root`;
  }
  return undefined;
}

/**
 * The stateful half of the header pass. Each `add` either records the entry
 * or throws UnsafeTarball; `finish` returns the plan.
 */
export class Planner {
  private readonly entries: PlannedEntry[] = [];
  /** Every name an entry has, with its kind and its entry number. */
  private readonly named = new Map<string, { kind: Kind; index: number }>();
  /** Directories implied by a deeper name, with the first entry that implied it. */
  private readonly implied = new Map<string, number>();
  private readonly linkTargets = new Set<string>();
  private files = 0;
  private bytes = 0;
  private count = 0;

  /** `filesOnly`: symlinks and hard links are refused too (a bundle made by `bundle create` has neither). */
  constructor(
    private readonly limits: ExtractLimits,
    private readonly options: { filesOnly?: boolean | undefined } = {},
  ) {}

  add(h: Header): void {
    const index = this.entries.length + 1;
    const refuse = (why: string): never => {
      throw new UnsafeTarball(why);
    };
    const problem = headerProblem(h);
    if (problem) refuse(problem);
    const name = (normalise(h.path) as { name: string }).name;
    const kind: Kind = name === '' ? 'root' : KINDS[h.type]!;
    if (this.options.filesOnly && (kind === 'symlink' || kind === 'hardlink')) refuse(`${show(h.path)}: ${article(kind)}; only regular files and directories are allowed here`);
    // A directory already implied by an earlier name was counted then.
    if (kind !== 'root' && !(kind === 'dir' && (this.implied.has(name) || this.named.has(name))) && ++this.count > this.limits.maxEntries) refuse(`more than ${this.limits.maxEntries} entries, counting the directories their names imply (limit; --max-env-entries), reached at ${show(h.path)}`);
    if (kind === 'file') {
      this.bytes += h.size;
      this.files++;
      if (this.bytes > this.limits.maxBytes) refuse(`more than ${this.limits.maxBytes} bytes of files (limit; --max-env-bytes), reached at ${show(h.path)}`);
    }
    if (kind !== 'root') {
      // Every directory above it must be a directory, for the whole archive.
      const parts = name.split('/');
      for (let i = 1; i < parts.length; i++) {
        const prefix = parts.slice(0, i).join('/');
        const there = this.named.get(prefix);
        if (there && there.kind !== 'dir') refuse(`${show(h.path)}: passes through ${show(prefix)}, ${article(there.kind)} (entry ${there.index}); nothing is written through a link or below a file`);
        if (!this.implied.has(prefix)) {
          this.implied.set(prefix, index);
          // A directory a name implies is created like any entry: it counts, or 500,000 names 128 deep would make 63 million.
          if (!this.named.has(prefix) && ++this.count > this.limits.maxEntries) refuse(`more than ${this.limits.maxEntries} entries, counting the directories their names imply (limit; --max-env-entries), reached at ${show(h.path)}`);
        }
      }
      const before = this.named.get(name);
      if (before && !(before.kind === 'dir' && kind === 'dir')) {
        refuse(`${show(h.path)}: entry ${index} is ${article(kind)} but entry ${before.index} already named it as ${article(before.kind)}; an env tarball names each path once`);
      }
      const under = this.implied.get(name);
      if (under !== undefined && kind !== 'dir') refuse(`${show(h.path)}: ${article(kind)} (entry ${index}) where entry ${under} has a name below it; nothing is written through a link or below a file`);
      if (kind === 'hardlink') {
        const target = (normalise(h.linkpath ?? '') as { name: string }).name;
        const t = this.named.get(target);
        if (!t || t.kind !== 'file') refuse(`${show(h.path)}: hard link to ${show(h.linkpath ?? '')}, which is ${t ? `${article(t.kind)} (entry ${t.index})` : 'not an earlier entry'}; a hard link must name a regular file earlier in the archive`);
        this.linkTargets.add(target);
      }
      this.named.set(name, { kind, index });
    }
    this.entries.push({
      // What the writer compares; mode and mtime are kept below, already made safe.
      header: { path: h.path, type: h.type, size: h.size, linkpath: h.linkpath },
      kind,
      name,
      mode: kind === 'dir' || kind === 'root' ? safeMode('dir', h.mode) : safeMode('file', h.mode),
      // An mtime tar could not read (a PAX mtime that is not a number) is left as the unpacking time.
      mtime: h.mtime && Number.isFinite(h.mtime.getTime()) ? h.mtime : undefined,
      target: kind === 'symlink' ? h.linkpath : kind === 'hardlink' ? (normalise(h.linkpath ?? '') as { name: string }).name : undefined,
    });
  }

  finish(): Plan {
    const dirs = new Set<string>(this.implied.keys());
    for (const [name, e] of this.named) if (e.kind === 'dir') dirs.add(name);
    const depth = (d: string) => d.split('/').length;
    return {
      entries: this.entries,
      dirs: [...dirs].sort((a, b) => depth(a) - depth(b) || (a < b ? -1 : a > b ? 1 : 0)),
      linkTargets: this.linkTargets,
      files: this.files,
      bytes: this.bytes,
    };
  }
}
