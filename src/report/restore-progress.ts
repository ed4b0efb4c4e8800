import cliProgress from 'cli-progress';
import type { RehearsalEvent } from '../rehearse/rehearse.js';
import { formatMs } from './render.js';

/** Restore progress: a bar on a terminal, a line every few seconds otherwise. */
export function restoreRenderer(io: { tty: boolean; err(text: string): void }): { on(e: RehearsalEvent): void; stop(): void } {
  let bar: cliProgress.SingleBar | undefined;
  let lastLine = 0;
  const mb = (n: number) => (n / 1024 / 1024).toFixed(0);
  return {
    on(e) {
      if (e.type !== 'restore') return;
      const p = e.progress;
      const eta = p.etaMs === undefined ? '?' : formatMs(p.etaMs);
      if (io.tty) {
        bar ??= new cliProgress.SingleBar({ stream: process.stderr, format: ' restore [{bar}] {percentage}% {mb}/{totalMb} MB, ETA {eta}', hideCursor: true }, cliProgress.Presets.shades_classic);
        if (!bar.isActive) bar.start(p.total, 0, { mb: '0', totalMb: mb(p.total), eta });
        bar.update(p.bytes, { mb: mb(p.bytes), totalMb: mb(p.total), eta });
        if (p.done && p.bytes >= p.total) bar.stop();
      } else if (p.done || p.elapsedMs - lastLine >= 5000) {
        lastLine = p.elapsedMs;
        io.err(`${new Date().toISOString().slice(11, 19)} restore ${mb(p.bytes)}/${mb(p.total)} MB (${((100 * p.bytes) / Math.max(1, p.total)).toFixed(0)}%)${p.done ? ` of ${p.file} done` : `, ETA ${eta}`}`);
      }
    },
    stop() {
      bar?.stop();
    },
  };
}

