import { sniff, walkArchive } from './archive.js';
import { buildManifest, compareManifests, type Manifest, type ManifestEntry } from './manifest.js';
import { DEFAULT_LIMITS, MANIFEST, Planner, UnsafeTarball, type ExtractLimits, type Plan } from './policy.js';
import { writePlan } from './writer.js';

/**
 * Safe extraction of a tarball we do not trust, in two passes over the same
 * local file (in the manner of Python's tarfile `data` filter and GNU tar's
 * delayed links): the header pass (policy.ts) refuses the whole tarball
 * before anything is written, the writer (writer.ts) writes only what that
 * pass allowed, in an order that never writes through a link. The caller
 * gives an empty private directory and removes it if this throws.
 *
 * Errors: UnsafeTarball (refused by policy), BadArchive (not a tarball we
 * can read: corrupt, truncated, a type we do not support), the signal's
 * reason when aborted, and system errors (ENOSPC…) as they are.
 */

export { DEFAULT_LIMITS, MANIFEST, UnsafeTarball, buildManifest, compareManifests };
export type { ExtractLimits, Manifest, ManifestEntry, Plan };
export { BadArchive, MissingTool } from './archive.js';

/**
 * Decompressed bytes a walk may read: the files' bytes plus, per entry, its
 * header block, padding and room for PAX records and GNU long names. Past it
 * the archive is refused, so even a stream of headers that name nothing ends.
 */
export function streamLimit(limits: ExtractLimits): number {
  return limits.maxBytes + limits.maxEntries * 8192 + 16 * 1024 * 1024;
}

export interface ExtractOptions {
  signal?: AbortSignal | undefined;
  /** Refuse symlinks and hard links as well (bundles). */
  filesOnly?: boolean | undefined;
  /**
   * A new private file for the decompressed tar of a .tar.gz: the header
   * pass writes it as it inflates, the writer reads it, so the tarball is
   * inflated once, not twice (inflating is most of a header pass's CPU).
   * It costs the tar's size on disk until the caller removes it. A .tar.zst
   * is decompressed twice instead (zstd is several times faster than
   * inflate, and then the disk is not asked for the tar's size).
   */
  plainSpool?: string | undefined;
}

/** The header pass alone: the plan, or UnsafeTarball/BadArchive. Nothing is written (but `keepTar`). */
export async function planArchive(file: string, limits: ExtractLimits = DEFAULT_LIMITS, options: ExtractOptions & { keepTar?: string | undefined } = {}): Promise<Plan> {
  const planner = new Planner(limits, { filesOnly: options.filesOnly });
  await walkArchive(file, { maxStreamBytes: streamLimit(limits), signal: options.signal, keepTar: options.keepTar }, ({ header }) => planner.add(header));
  return planner.finish();
}

/** Unpack `file` into the empty directory `dest`; returns the manifest of what was written, each file hashed as it was written. */
export async function safeExtract(file: string, dest: string, limits: ExtractLimits = DEFAULT_LIMITS, options: ExtractOptions = {}): Promise<Manifest> {
  const keepTar = options.plainSpool !== undefined && (await sniff(file)) === 'gzip' ? options.plainSpool : undefined;
  const plan = await planArchive(file, limits, { ...options, keepTar });
  // The writer still checks every entry against the plan: the kept tar is read as untrusted as the tarball.
  return writePlan(keepTar ?? file, plan, dest, { maxStreamBytes: streamLimit(limits), signal: options.signal });
}
