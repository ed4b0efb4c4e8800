import { provisionAll } from '../envs/cache.js';
import { LeapfrogError } from '../errors.js';
import { downloadRenderer } from '../report/progress.js';
import { provisionOptions } from './context.js';
import { reportRedirect, withInterrupt, type EnvsContext } from './envs.js';
import type { Io } from './io.js';

/** `leapfrog envs provision`: fetch and unpack every env the given chains need, before the window. */
export async function provisionEnvs({ args, cacheDir, chains, json }: EnvsContext, io: Io): Promise<void> {
  if (!chains) throw new LeapfrogError('input', 'envs provision needs --chain FILE (or --chains DIR): the chains whose envs to fetch');
  if (!Number.isInteger(args.parallel) || args.parallel < 1) throw new LeapfrogError('input', `--parallel ${args.parallel}: must be a whole number, 1 or more`);
  const envs = chains.flatMap((c) => [...c.envs.values()]);
  const render = downloadRenderer(io.tty && !json, process.stderr, io.err);
  const started = Date.now();
  const options = {
    ...provisionOptions(args, chains.map((c) => c.chain.file)),
    onProgress: (env: string, p: { bytes: number; total: number | undefined; attempt: number }) => render.progress(env, p.bytes, p.total, p.attempt),
    onRedirect: reportRedirect(io),
  };
  let result;
  try {
    result = await withInterrupt(io, (signal) =>
      provisionAll(envs, cacheDir, args.parallel, { ...options, signal }, (env, r) => {
        if (json) return;
        render.done(env.name, r instanceof LeapfrogError ? `env ${env.name}: FAILED` : `env ${env.name}: ${r.cached ? 'already cached' : 'unpacked'} in ${r.root}`);
      }),
    );
  } finally {
    render.stop();
  }
  if (json) {
    io.out(JSON.stringify({ format: 'leapfrog.envs.provision/v1', cache: cacheDir, envs: result.done.map((p) => ({ env: p.def.name, sha256: p.sha256, root: p.root, cached: p.cached })), failed: result.failed.map((e) => e.message) }, null, 2));
  } else if (result.failed.length === 0) {
    io.out(`${result.done.length} env${result.done.length === 1 ? '' : 's'} ready in ${cacheDir} (${((Date.now() - started) / 1000).toFixed(1)} s).`);
  }
  if (result.failed.length === 1) throw result.failed[0]!;
  if (result.failed.length > 1) {
    const kind = result.failed.some((f) => f.kind === 'interrupted') ? 'interrupted' : result.failed.every((f) => f.kind === 'input') ? 'input' : 'unexpected';
    throw new LeapfrogError(kind, `${result.failed.length} envs could not be provisioned:`, { details: result.failed.map((f) => f.message) });
  }
}
