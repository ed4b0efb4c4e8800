import { Worker } from 'node:worker_threads';
import type { WriteAnswer, WriteBatch, WriteOp } from './write-worker.js';

/**
 * The writer threads (write-worker.ts) seen from the main thread: ops are
 * gathered into batches per thread and sent when a batch is full (or on
 * `drain`); each thread does its ops in the order they were added. The
 * bytes sent but not yet written are bounded (`room`), so memory stays flat
 * whatever the tarball. A batch's contents are copied into one buffer of
 * its own and transferred: a slice of the parser's chunk must never be
 * posted as it is (structured clone would copy, or transfer, the whole
 * ArrayBuffer under it).
 */

const BATCH_BYTES = 1024 * 1024;
const BATCH_OPS = 512;
const IN_FLIGHT = 32 * 1024 * 1024;

type Failure = NonNullable<WriteAnswer['error']>;

interface Open {
  ops: WriteOp[];
  parts: Buffer[];
  bytes: number;
}

export class WritePool {
  private readonly workers: Worker[];
  private readonly batches: Open[];
  private readonly pending = new Map<number, number>();
  private waiters: (() => void)[] = [];
  private inFlight = 0;
  private nextId = 0;
  private current = 0;
  /** The first failure: a thread's (an op that failed) or the thread itself (it died). */
  failure: Failure | Error | undefined;

  constructor(dest: string, count: number) {
    this.workers = Array.from({ length: count }, () => {
      // execArgv: none of the parent's flags (`node --input-type=module -e …` makes a worker fail to load).
      const w = new Worker(new URL('./write-worker.js', import.meta.url), { workerData: { dest }, execArgv: [] });
      w.on('message', (a: WriteAnswer) => {
        this.inFlight -= this.pending.get(a.id) ?? 0;
        this.pending.delete(a.id);
        if (a.error) this.failure ??= a.error;
        this.wake();
      });
      w.on('error', (e) => {
        this.failure ??= e;
        this.wake();
      });
      w.on('exit', () => {
        this.failure ??= new Error('a writer thread stopped');
        this.wake();
      });
      return w;
    });
    this.batches = this.workers.map(() => ({ ops: [], parts: [], bytes: 0 }));
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  private next(): Promise<void> {
    return new Promise((r) => this.waiters.push(r));
  }

  /** The thread the next file goes to: the one whose batch is filling. */
  choose(): number {
    return this.current;
  }

  /** Queue `op` on thread `w`, with its bytes (`at`/`length` are filled in here). */
  add(w: number, op: WriteOp, data?: Buffer): void {
    const b = this.batches[w]!;
    if (data && (op.op === 'file' || op.op === 'part')) {
      op.at = b.bytes;
      op.length = data.length;
      b.parts.push(data);
      b.bytes += data.length;
    }
    b.ops.push(op);
    if (b.bytes >= BATCH_BYTES || b.ops.length >= BATCH_OPS) this.flush(w);
  }

  private flush(w: number): void {
    const b = this.batches[w]!;
    if (b.ops.length === 0) return;
    const data = Buffer.allocUnsafeSlow(b.bytes);
    let at = 0;
    for (const p of b.parts) at += p.copy(data, at);
    const id = this.nextId++;
    this.pending.set(id, b.bytes);
    this.inFlight += b.bytes;
    const batch: WriteBatch = { id, ops: b.ops, data: data.buffer as ArrayBuffer };
    this.workers[w]!.postMessage(batch, [batch.data]);
    this.batches[w] = { ops: [], parts: [], bytes: 0 };
    if (w === this.current) this.current = (this.current + 1) % this.workers.length;
  }

  /** Wait while too many bytes are on their way to the threads. */
  async room(): Promise<void> {
    while (this.inFlight > IN_FLIGHT && !this.failure) await this.next();
  }

  /** Send every batch and wait until each thread has done all it was given (or one failed). */
  async drain(): Promise<void> {
    for (let w = 0; w < this.workers.length; w++) this.flush(w);
    while (this.pending.size > 0 && !this.failure) await this.next();
  }

  /** Stop the threads; a system call under way ends first, so nothing is written after this resolves. */
  async close(): Promise<void> {
    for (const w of this.workers) w.removeAllListeners('exit');
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
