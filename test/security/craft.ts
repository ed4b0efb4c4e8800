/**
 * Crafted tarballs, block by block: each header written with tar's own
 * Header class (so checksums and fields are those of a real tar), PAX
 * records and GNU long-name headers written as the formats define them
 * (POSIX pax, GNU tar manual "Basic Tar Format"), in exactly the order a
 * test asks for, including orders no honest tar would produce.
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import * as tar from 'tar';

export type EntryType = 'File' | 'Directory' | 'SymbolicLink' | 'Link' | 'CharacterDevice' | 'BlockDevice' | 'FIFO' | 'SparseFile' | 'ContiguousFile' | 'GNUDumpDir';

export interface Entry {
  path: string;
  type?: EntryType;
  mode?: number;
  body?: string | Buffer;
  /** Declared size, when it must differ from the body's (a truncated entry). */
  size?: number;
  linkpath?: string;
  mtime?: Date;
  /** A PAX extended header ('x') before the entry, with these records. */
  pax?: Record<string, string>;
  /** A GNU long-name header ('L') carrying the path, the ustar name a stand-in. */
  gnuLongName?: boolean;
  /** A GNU long-link header ('K') carrying the link target. */
  gnuLongLink?: boolean;
  /** A raw typeflag character, for types tar's Header has no name for. */
  typeflag?: string;
}

const pad = (n: number) => Buffer.alloc((512 - (n % 512)) % 512);

function block(fields: { path: string; type: string; size: number; mode?: number; linkpath?: string; mtime?: Date }): Buffer {
  const b = Buffer.alloc(512);
  new tar.Header({
    path: fields.path,
    type: fields.type as never,
    mode: fields.mode ?? 0o644,
    size: fields.size,
    linkpath: fields.linkpath ?? '',
    mtime: fields.mtime ?? new Date(1_600_000_000_000),
    uid: 0,
    gid: 0,
    uname: '',
    gname: '',
  }).encode(b, 0);
  return b;
}

/** `len key=value\n`, len counting itself (POSIX pax, "extended header"). */
export function paxRecords(records: Record<string, string>): Buffer {
  const out: Buffer[] = [];
  for (const [k, v] of Object.entries(records)) {
    const body = ` ${k}=${v}\n`;
    let len = Buffer.byteLength(body) + 1;
    while (String(len).length + Buffer.byteLength(body) !== len) len++;
    out.push(Buffer.from(`${len}${body}`));
  }
  return Buffer.concat(out);
}

function meta(type: string, data: Buffer, name: string): Buffer[] {
  return [block({ path: name, type, size: data.length }), data, pad(data.length)];
}

/** The raw tar bytes of these entries, with the two end-of-archive blocks unless `eof: false`. */
export function tarBytes(entries: Entry[], options: { eof?: boolean } = {}): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    const type = e.type ?? 'File';
    const body = e.body === undefined ? Buffer.alloc(0) : Buffer.from(e.body);
    const size = e.size ?? (type === 'File' || type === 'ContiguousFile' || type === 'SparseFile' ? body.length : 0);
    if (e.pax) parts.push(...meta('ExtendedHeader', paxRecords(e.pax), 'PaxHeader/x'));
    if (e.gnuLongName) parts.push(...meta('NextFileHasLongPath', Buffer.from(`${e.path}\0`), '././@LongLink'));
    if (e.gnuLongLink) parts.push(...meta('NextFileHasLongLinkpath', Buffer.from(`${e.linkpath ?? ''}\0`), '././@LongLink'));
    const shortPath = e.gnuLongName || Buffer.byteLength(e.path) > 100 ? 'longname-standin' : e.path;
    const shortLink = e.gnuLongLink || Buffer.byteLength(e.linkpath ?? '') > 100 ? 'longlink-standin' : e.linkpath;
    const h = block({ path: shortPath, type: e.typeflag ? 'File' : type, size, mode: e.mode ?? (type === 'Directory' ? 0o755 : 0o644), linkpath: shortLink, mtime: e.mtime });
    if (e.typeflag) {
      // Rewrite the typeflag byte and the checksum (sum of the header with the checksum field as spaces).
      h[156] = e.typeflag.charCodeAt(0);
      h.fill(0x20, 148, 156);
      let sum = 0;
      for (const byte of h) sum += byte;
      h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
    }
    parts.push(h);
    if (body.length > 0) parts.push(body, pad(body.length));
  }
  if (options.eof !== false) parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

/** `bytes` compressed by the zstd program (Debian package zstd), as `envs build` compresses. */
export function zstdSync(bytes: Buffer): Buffer {
  return execFileSync('zstd', ['-q', '-c', '-3'], { input: bytes, maxBuffer: 1024 ** 3 });
}

/** A .tar.gz of these entries at `file` (a .tar.zst with `zstd`, a plain tar with `gzip: false`). */
export function craft(file: string, entries: Entry[], options: { eof?: boolean; gzip?: boolean; zstd?: boolean } = {}): string {
  const raw = tarBytes(entries, options);
  writeFileSync(file, options.zstd ? zstdSync(raw) : options.gzip === false ? raw : gzipSync(raw));
  return file;
}

/**
 * A gzip of one file of `bytes` zero bytes, made of concatenated gzip
 * members (RFC 1952 allows several; gunzip reads them as one stream), so a
 * 4 GiB entry costs a few MB and no time to build.
 */
export function zeroBomb(file: string, name: string, bytes: number): string {
  const MiB = 1024 * 1024;
  if (bytes % MiB !== 0) throw new Error('whole MiB only');
  const member = gzipSync(Buffer.alloc(MiB), { level: 9 });
  const parts = [gzipSync(block({ path: name, type: 'File', size: bytes }))];
  for (let i = 0; i < bytes / MiB; i++) parts.push(member);
  parts.push(gzipSync(Buffer.alloc(1024)));
  writeFileSync(file, Buffer.concat(parts));
  return file;
}
