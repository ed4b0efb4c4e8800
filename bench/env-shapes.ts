/**
 * The trees bench/provision unpacks, generated deterministically (same
 * flags, same bytes) and packed as the same tar in both compressions the
 * cache accepts:
 *
 * - synthetic: N files of equal size of text-like content (a venv's
 *   shape), the bench's historical env;
 * - nova: a look-alike of a real nova 26 root filesystem env built by
 *   `envs build --debian bookworm --packages python3-nova,...` (456 MiB,
 *   23 401 files unpacked, 141 MiB as tar.gz): many small text files
 *   (sizes log-normal around 4 KiB, as .py files are), one in fifty a
 *   binary-like file of hundreds of KiB to MiBs (shared libraries), about
 *   2 400 directories, 1 000 symlinks and a few hard links.
 *
 * Text is sliced from a 48 MiB corpus of words, larger than any zstd or
 * gzip window we compress with, so no compressor sees the same slice twice.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, linkSync, lstatSync, mkdirSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import * as tar from 'tar';

export interface Shape {
  name: 'synthetic' | 'nova';
  /** Where the tarballs are (reused between runs). */
  base: string;
  gz: string;
  zst: string;
  files: number;
}

/** A small deterministic generator (Park–Miller), so the same flags give the same tree. */
function rng(seed: number) {
  let s = seed % 2147483647 || 1;
  const next = () => (s = (s * 48271) % 2147483647) / 2147483647;
  return {
    next,
    int: (n: number) => Math.floor(next() * n),
    /** Log-normal with median `median`, spread `sigma`. */
    logNormal: (median: number, sigma: number) => median * Math.exp(sigma * Math.sqrt(-2 * Math.log(next() || 1e-12)) * Math.cos(2 * Math.PI * next())),
  };
}

function textCorpus(bytes: number, r: ReturnType<typeof rng>): Buffer {
  const chars = 'abcdefghijklmnopqrstuvwxyz_ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';
  const words = Array.from({ length: 20_000 }, () => Array.from({ length: 2 + r.int(11) }, (_, i) => chars[r.int(i === 0 ? 27 : 63)]).join(''));
  const out = Buffer.alloc(bytes);
  let at = 0;
  // A hundred words make most of the text, as keywords and common names do in code: ~3x under gzip -6.
  while (at < bytes) {
    at += out.write(words[r.int(r.next() < 0.85 ? 100 : words.length)]!, at);
    if (at < bytes) out[at++] = r.next() < 0.12 ? 10 : 32;
  }
  return out;
}

/** Machine-code-like bytes: 28 % random, the rest runs of one byte or copies of recent blocks: ~3.2x under gzip -6. */
function binaryCorpus(bytes: number, r: ReturnType<typeof rng>): Buffer {
  const out = randomBytes(bytes);
  for (let off = 64; off + 64 <= bytes; off += 64) {
    const p = r.next();
    if (p < 0.36) out.fill(r.int(4), off, off + 64);
    else if (p < 0.72) {
      const from = Math.max(0, off - 64 * (1 + r.int(200)));
      out.copy(out, off, from, from + 64);
    }
  }
  return out;
}

async function pack(src: string, names: string[], gz: string, zst: string): Promise<void> {
  const plain = `${gz}.tar`;
  await tar.c({ file: plain, cwd: src, portable: true, noDirRecurse: true }, names);
  execFileSync('sh', ['-c', 'gzip -6 -n -c "$1" > "$2" && zstd -q -T0 -12 -f "$1" -o "$3"', 'sh', plain, gz, zst]);
  rmSync(plain);
}

/** Every path under `src`, parents first, sorted (what `envs build` packs). */
function listTree(src: string, rel = ''): string[] {
  const out: string[] = [];
  for (const name of readdirSync(path.join(src, rel)).sort()) {
    const r = rel ? `${rel}/${name}` : name;
    out.push(r);
    if (lstatSync(path.join(src, r)).isDirectory()) out.push(...listTree(src, r));
  }
  return out;
}

export async function synthetic(tmp: string, mb: number, files: number): Promise<Shape> {
  const base = path.join(tmp, `leapfrog-bench-provision-v2-${mb}mb-${files}`);
  const shape: Shape = { name: 'synthetic', base, gz: path.join(base, 'env.tar.gz'), zst: path.join(base, 'env.tar.zst'), files };
  if (existsSync(shape.gz) && existsSync(shape.zst)) return shape;
  rmSync(base, { recursive: true, force: true });
  const src = path.join(base, 'src');
  const r = rng(1);
  const per = Math.floor((mb * 1024 * 1024) / files);
  const corpus = textCorpus(48 * 1024 * 1024, r);
  for (let i = 0; i < files; i++) {
    const dir = path.join(src, 'lib', `pkg${Math.floor(i / 200)}`);
    if (i % 200 === 0) mkdirSync(dir, { recursive: true });
    const at = r.int(corpus.length - per);
    writeFileSync(path.join(dir, `mod${i}.py`), corpus.subarray(at, at + per));
  }
  mkdirSync(path.join(src, 'bin'), { recursive: true });
  writeFileSync(path.join(src, 'bin', 'tool'), '#!/bin/sh\nexit 0\n', { mode: 0o755 });
  await pack(src, listTree(src), shape.gz, shape.zst);
  rmSync(src, { recursive: true, force: true });
  return shape;
}

export async function nova(tmp: string): Promise<Shape> {
  const FILES = 23_401;
  const TOTAL = 456 * 1024 * 1024;
  const base = path.join(tmp, 'leapfrog-bench-provision-nova26-v2');
  const shape: Shape = { name: 'nova', base, gz: path.join(base, 'env.tar.gz'), zst: path.join(base, 'env.tar.zst'), files: FILES };
  if (existsSync(shape.gz) && existsSync(shape.zst)) return shape;
  rmSync(base, { recursive: true, force: true });
  const src = path.join(base, 'src');
  const r = rng(26);
  // Sizes first, then scaled so the tree is TOTAL bytes.
  const binary = Array.from({ length: FILES }, (_, i) => i % 50 === 7);
  const sizes = binary.map((b) => Math.min(b ? r.logNormal(300_000, 1.3) : r.logNormal(4_000, 1.2), 40 * 1024 * 1024));
  const scale = TOTAL / sizes.reduce((a, b) => a + b, 0);
  const text = textCorpus(48 * 1024 * 1024, r);
  const bin = binaryCorpus(64 * 1024 * 1024, r);
  const dirs: string[] = [];
  for (let d = 0; d < 2_400; d++) {
    const parent = d < 40 ? `usr/lib/python3/dist-packages/p${d}` : `${dirs[r.int(dirs.length)]}/m${d}`;
    dirs.push(parent);
    mkdirSync(path.join(src, parent), { recursive: true });
  }
  const written: string[] = [];
  for (let i = 0; i < FILES; i++) {
    const size = Math.max(0, Math.round(sizes[i]! * scale));
    const rel = `${dirs[r.int(dirs.length)]}/${binary[i] ? `lib${i}.so` : `f${i}.py`}`;
    const corpus = binary[i] ? bin : text;
    const parts: Buffer[] = [];
    for (let left = size; left > 0; ) {
      const n = Math.min(left, corpus.length);
      const at = r.int(corpus.length - n + 1);
      parts.push(corpus.subarray(at, at + n));
      left -= n;
    }
    writeFileSync(path.join(src, rel), Buffer.concat(parts), { mode: binary[i] ? 0o755 : 0o644 });
    written.push(rel);
  }
  for (let i = 0; i < 1_000; i++) {
    const target = written[r.int(written.length)]!;
    const link = `${target}.l${i}`;
    symlinkSync(i % 3 === 0 ? `/${target}` : path.basename(target), path.join(src, link));
  }
  for (let i = 0; i < 20; i++) linkSync(path.join(src, written[i * 97]!), path.join(src, `${written[i * 97]!}.h${i}`));
  await pack(src, listTree(src), shape.gz, shape.zst);
  rmSync(src, { recursive: true, force: true });
  return shape;
}
