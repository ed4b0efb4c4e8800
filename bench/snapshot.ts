/**
 * bench/snapshot: leapfrog's snapshot of a large MariaDB database against
 * what a DBA would type, `mariadb-dump --single-transaction DB | gzip`, in
 * the same run on the same server.
 *
 *   npm run bench:snapshot   (or: node dist/bench/snapshot.js [--db mysql://root@127.0.0.1:3306] [--size-mb 1100] [--rounds 1] [--level N])
 *
 * Generates a scratch database lf_bench_<random> of at least --size-mb MiB
 * (data + indexes, as information_schema reports them) by inserting
 * batches of generated rows (SEQUENCE engine), times both, prints the ratio and the sizes, and
 * drops the database afterwards, also when interrupted.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { execa } from 'execa';
import { SNAPSHOT_GZIP_LEVEL } from '../src/runner/checkpoint.js';
import { withTarget } from '../src/database/session.js';
import { clientOptionFile } from '../src/database/mysql-dump.js';
import { snapshotDatabase } from '../src/database/snapshot.js';
import { parseTargetUrl } from '../src/database/url.js';

const argv = process.argv.slice(2);
const opt = (name: string, def: string) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1]! : def;
};
const url = opt('db', 'mysql://root@127.0.0.1:3306');
const SIZE_MB = Number(opt('size-mb', '1100'));
const ROUNDS = Number(opt('rounds', '1'));
// leapfrog's gzip level (its default unless --level): to see what the level costs.
const LEVEL = Number(opt('level', String(SNAPSHOT_GZIP_LEVEL)));
const target = parseTargetUrl(url, process.env.LEAPFROG_DB_PASSWORD);
if (target.kind !== 'mysql') throw new Error('bench:snapshot needs a MySQL/MariaDB --db');
const db = `lf_bench_${randomBytes(4).toString('hex')}`;
const work = mkdtempSync(path.join(os.tmpdir(), 'leapfrog-bench-snapshot-'));
const opts = clientOptionFile(target);
const sql = (q: string) => execa('mariadb', [`--defaults-extra-file=${opts.file}`, '--batch', '--skip-column-names', '-e', q]);
const log = (s: string) => process.stdout.write(s + '\n');
const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(0)} MiB`;

async function cleanup(): Promise<void> {
  await sql(`DROP DATABASE IF EXISTS \`${db}\``).catch(() => {});
  rmSync(work, { recursive: true, force: true });
  opts.dispose();
}
process.once('SIGINT', () => void cleanup().then(() => process.exit(130)));

try {
  // Rows like a cloud's: ids, uuids, short strings, a JSON-ish text column. Batches come from
  // the SEQUENCE engine (no INSERT ... SELECT from the table itself, which needs a temporary copy).
  const t0 = performance.now();
  await sql(`CREATE DATABASE \`${db}\`; CREATE TABLE \`${db}\`.instances (
      id BIGINT AUTO_INCREMENT PRIMARY KEY, uuid CHAR(36) NOT NULL, host VARCHAR(64), state VARCHAR(16),
      created_at DATETIME NOT NULL, vcpus INT, memory_mb INT, metadata TEXT, KEY (host), KEY (uuid)) ENGINE=InnoDB`);
  const size = async () => Number((await sql(`SELECT SUM(DATA_LENGTH + INDEX_LENGTH) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '${db}'`)).stdout.trim());
  const BATCH = 200_000;
  for (let batch = 0; (await sql(`ANALYZE TABLE \`${db}\`.instances`), await size()) < SIZE_MB * 1024 * 1024; batch++) {
    await sql(`USE \`${db}\`; INSERT INTO instances (uuid, host, state, created_at, vcpus, memory_mb, metadata)
      SELECT UUID(), CONCAT('compute-', seq % 500), ELT(1 + seq % 4, 'active', 'stopped', 'error', 'building'),
             NOW() - INTERVAL seq MINUTE, 1 + seq % 16, 512 * (1 + seq % 64),
             CONCAT('{"flavor":"m1.', ELT(1 + seq % 3, 'small', 'medium', 'large'), '","key":"', SHA2(seq, 256), '","note":"', REPEAT(MD5(seq), 4), '"}')
      FROM seq_${batch * BATCH + 1}_to_${(batch + 1) * BATCH}`);
  }
  const rows = Number((await sql(`SELECT COUNT(*) FROM \`${db}\`.instances`)).stdout.trim());
  log(`generated ${db}: ${rows} rows, ${mb(await size())} (data + indexes) in ${((performance.now() - t0) / 1000).toFixed(0)} s`);

  const plain: number[] = [];
  const ours: number[] = [];
  let plainBytes = 0;
  let ourBytes = 0;
  for (let round = 0; round < ROUNDS; round++) {
    // Alternate the order so neither always gets the warmer buffer pool.
    const order = round % 2 === 0 ? ['plain', 'leapfrog'] : ['leapfrog', 'plain'];
    for (const which of order) {
      const t = performance.now();
      if (which === 'plain') {
        const out = path.join(work, 'plain.sql.gz');
        await execa('sh', ['-c', `mariadb-dump --defaults-extra-file="$1" --single-transaction "$2" | gzip > "$3"`, 'sh', opts.file, db, out]);
        plain.push(performance.now() - t);
        plainBytes = statSync(out).size;
        rmSync(out);
      } else {
        const dir = path.join(work, 'leapfrog');
        const f = await withTarget(target, (s) => snapshotDatabase(s, db, dir, { level: LEVEL }));
        ours.push(performance.now() - t);
        ourBytes = f.bytes ?? 0;
        rmSync(dir, { recursive: true, force: true });
      }
    }
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  log(`snapshot of ${db}, ${ROUNDS} round(s), medians:`);
  log(`  mariadb-dump --single-transaction | gzip:   ${(median(plain) / 1000).toFixed(1)} s, ${mb(plainBytes)}`);
  log(`  leapfrog snapshot (gzip level ${LEVEL}, sha256):  ${(median(ours) / 1000).toFixed(1)} s, ${mb(ourBytes)}`);
  log(`  ratio leapfrog/plain: ${(median(ours) / median(plain)).toFixed(2)}x (goal <= 1.00x)`);
} finally {
  await cleanup();
}
