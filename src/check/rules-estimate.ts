import type { Estimate } from './estimate.js';
import type { CheckRow } from './facts.js';
import { sizeText } from '../report/prediction.js';

/**
 * Whether the runs and rehearsals the estimate comes from measured a copy
 * of this target's size. A rehearsal on a copy much smaller than production
 * (an old dump, a trimmed one) says little about production's window by
 * itself: its step times are scaled by the rows (predict.ts), a model, not a
 * measurement. A Warning, so that nobody books the window on it unawares.
 * No row when nothing in the estimate scales with rows.
 */
export function sizeCheck(e: Estimate | undefined): CheckRow | undefined {
  const sizes = e?.sizes ?? [];
  if (sizes.length === 0) return undefined;
  const smaller = sizes.filter((s) => s.ratio >= 2);
  const data = sizes.map((s) => ({ from: s.from, observedRows: s.observedRows, rowsNow: s.rowsNow, ratio: Number.isFinite(s.ratio) ? s.ratio : null }));
  if (smaller.length === 0) {
    const said = sizes.flatMap((s) => sizeText(s) ?? []);
    return {
      check: 'Rehearsal size',
      result: 'Success',
      details: said.length > 0 ? `${said.join('; ')}; the estimate scales its step times down by the rows` : `the estimate's runs measured copies of about this target's size (${sizes.map((s) => `${s.from}: ${s.observedRows} rows there, ${s.rowsNow} here`).join('; ')})`,
      data,
    };
  }
  return {
    check: 'Rehearsal size',
    result: 'Warning',
    details: `${smaller.map((s) => sizeText(s)!).join('; ')}. The estimate scales each step's time by this target's rows (time = fixed + per row × rows, inputs under Estimate), which is a model, not a measurement; rehearse on a full-size copy (\`leapfrog rehearse --from\` or a fresh dump) to measure the window`,
    data,
  };
}
