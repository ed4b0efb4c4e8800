import path from 'node:path';
import { buildEnv, type BuildFrom } from '../envs/build.js';
import { DEFAULT_MIRROR } from '../envs/build-debian.js';
import { LeapfrogError } from '../errors.js';
import type { EnvsArgs } from './envs.js';
import { withInterrupt } from './envs.js';
import type { Io } from './io.js';

/**
 * `leapfrog envs build (--debian SUITE --packages P,… | --oci ARCHIVE | --dir DIR) --out DIR [--compression zstd|gzip]`:
 * parses the flags, builds, says where the env file and tarball are. The
 * source date comes from SOURCE_DATE_EPOCH when it is set (the
 * reproducible-builds convention), else from the archive or the tree.
 */

const csv = (v: string | undefined): string[] => (v ?? '').split(',').map((s) => s.trim()).filter((s) => s !== '');

function sourceDate(env: NodeJS.ProcessEnv): number | undefined {
  const raw = env.SOURCE_DATE_EPOCH;
  if (raw === undefined || raw === '') return undefined;
  if (!/^\d+$/.test(raw)) throw new LeapfrogError('input', `SOURCE_DATE_EPOCH=${raw}: must be a whole number of seconds since 1970-01-01 UTC`);
  return Number(raw);
}

export async function buildCommand(args: EnvsArgs, io: Io): Promise<void> {
  if ([args.debian, args.dir, args.oci].filter((v) => v !== undefined).length !== 1) throw new LeapfrogError('input', 'envs build needs exactly one of --debian SUITE (with --packages P,…), --oci ARCHIVE or --dir DIR');
  if (!args.out) throw new LeapfrogError('input', 'envs build needs --out DIR: where NAME.tar.zst (or NAME.tar.gz with --compression gzip) and NAME.yaml are written');
  if (args.compression !== undefined && args.compression !== 'zstd' && args.compression !== 'gzip') throw new LeapfrogError('input', `--compression ${String(args.compression)}: zstd or gzip`);
  if (args.debian === undefined && (args.packages ?? args.mirror ?? args.components ?? args.variant ?? args.updates) !== undefined) {
    throw new LeapfrogError('input', '--packages, --mirror, --components, --variant and --no-updates go with --debian, not --dir or --oci');
  }
  let from: BuildFrom;
  if (args.debian !== undefined) {
    if (!/^[a-z][a-z0-9.-]*$/.test(args.debian)) throw new LeapfrogError('input', `--debian ${args.debian}: not a Debian suite name (bookworm, trixie, stable…)`);
    const mirror = args.mirror ?? DEFAULT_MIRROR;
    if (!/^https?:\/\/[^\s]+$/.test(mirror)) throw new LeapfrogError('input', `--mirror ${mirror}: must be an http:// or https:// URL`);
    const packages = csv(args.packages);
    const bad = packages.filter((p) => !/^[a-z0-9][a-z0-9+.-]+(=[A-Za-z0-9.+~:-]+)?$/.test(p));
    if (bad.length > 0) throw new LeapfrogError('input', `--packages: ${bad.join(', ')} ${bad.length === 1 ? 'is not a' : 'are not'} Debian package name${bad.length === 1 ? '' : 's'} (optionally NAME=VERSION)`);
    const components = csv(args.components ?? 'main');
    if (components.some((c) => !/^[a-z0-9-]+$/.test(c))) throw new LeapfrogError('input', `--components ${args.components}: comma-separated names such as main,contrib`);
    const variant = args.variant ?? 'essential';
    if (!/^[a-z-]+$/.test(variant)) throw new LeapfrogError('input', `--variant ${variant}: one of mmdebstrap's variants (essential, apt, minbase, buildd, required, important, standard)`);
    from = { kind: 'debian', debian: { suite: args.debian, packages, mirror, components, variant, updates: args.updates !== false } };
  } else if (args.oci !== undefined) {
    from = { kind: 'oci', archive: args.oci };
  } else {
    from = { kind: 'dir', dir: args.dir! };
  }
  const name = args.name ?? (from.kind === 'debian' ? from.debian.suite : from.kind === 'oci' ? path.basename(path.resolve(from.archive)).replace(/\.(tar|tar\.gz|tgz|tar\.zst)$/, '').replace(/[^A-Za-z0-9._-]/g, '-') : path.basename(path.resolve(from.dir)));
  const started = Date.now();
  const r = await withInterrupt(io, (signal) =>
    buildEnv({ name, from, outDir: path.resolve(args.out!), sourceDateEpoch: sourceDate(process.env), log: (l) => io.err(l), signal, compression: args.compression }),
  );
  if (args.format === 'json') {
    io.out(JSON.stringify({ format: 'leapfrog.envs.build/v1', env: r.name, envFile: r.envFile, tarball: r.tarball, sha256: r.sha256, entries: r.entries, sourceDateEpoch: r.sourceDateEpoch, packages: r.packages }, null, 2));
    return;
  }
  io.out(`env ${r.name}: ${r.envFile} and ${r.tarball} (sha256 ${r.sha256}, ${r.entries} entries${r.packages.length > 0 ? `, ${r.packages.length} packages` : ''}) in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}

/** `envs list`'s packages column: how many, and the versions of those the build asked for. */
export function describePackages(build: Record<string, unknown> | null, packages: { name: string; version: string }[] | null): string {
  if (!packages) return '-';
  const asked = Array.isArray(build?.packages) ? (build!.packages as string[]).map((p) => p.split('=')[0]) : [];
  const shown = packages.filter((p) => asked.includes(p.name)).map((p) => `${p.name} ${p.version}`);
  return [`${packages.length} from ${String(build?.debian ?? '?')}`, ...shown].join('\n');
}
