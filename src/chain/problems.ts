import { isMap, isPair, isScalar, type Document, type LineCounter, type Node } from 'yaml';
import { LeapfrogError } from '../errors.js';

/**
 * The problems found in one chain or env file, each located in the YAML
 * document as `file:line:column: field: what is wrong`, all reported at
 * once (at most MAX_PROBLEMS listed).
 */

export type Path = readonly (string | number)[];

const MAX_PROBLEMS = 50;

export class Problems {
  readonly list: string[] = [];
  constructor(
    private readonly file: string,
    private readonly doc: Document,
    private readonly lines: LineCounter,
  ) {}

  /** Problems found beyond those listed: a file with thousands says enough with the first ones. */
  private more = 0;

  private full(): boolean {
    if (this.list.length < MAX_PROBLEMS) return false;
    this.more++;
    return true;
  }

  addLine(text: string): void {
    if (!this.full()) this.list.push(text);
  }

  add(at: Path, message: string, pointAtKey = false): void {
    if (this.full()) return;
    const { line, col } = this.locate(at, pointAtKey);
    const field = formatPath(at);
    this.list.push(`${this.file}:${line}:${col}: ${field === '' ? '' : field + ': '}${message}`);
  }

  /** A problem at `row` of the string at `at` (a template): a block scalar's text starts on the line after its `|`. */
  addInside(at: Path, row: number, message: string): void {
    if (this.full()) return;
    const { line, col, node } = this.locate(at, false);
    const block = isScalar(node) && (node.type === 'BLOCK_LITERAL' || node.type === 'BLOCK_FOLDED');
    const field = formatPath(at);
    const shownLine = line + row - (block ? 0 : 1);
    this.list.push(`${this.file}:${shownLine}:${row === 1 && !block ? col : 1}: ${field}: ${message}`);
  }

  private locate(at: Path, pointAtKey: boolean): { line: number; col: number; node: unknown } {
    // Walk down as far as the document goes; report the deepest node found.
    let node: unknown = this.doc.contents;
    let offset = (node as Node | null)?.range?.[0] ?? 0;
    for (const key of at) {
      if (!isMap(node) && !(node && typeof node === 'object' && 'items' in node)) break;
      const items = (node as { items: unknown[] }).items;
      let next: unknown;
      if (isMap(node)) {
        const pair = items.find((p) => isPair(p) && isScalar(p.key) && p.key.value === key);
        if (!isPair(pair)) break;
        next = pair.value;
        const keyNode = pair.key as Node;
        offset = (pointAtKey && key === at[at.length - 1] ? keyNode.range?.[0] : (pair.value as Node | null)?.range?.[0] ?? keyNode.range?.[0]) ?? offset;
      } else {
        next = typeof key === 'number' ? items[key] : undefined;
        if (next === undefined) break;
        offset = (next as Node).range?.[0] ?? offset;
      }
      node = next;
    }
    const pos = this.lines.linePos(offset);
    return { line: pos.line, col: pos.col, node };
  }

  throwIfAny(what: string): void {
    if (this.list.length === 0) return;
    const n = this.list.length + this.more;
    if (this.more > 0) this.list.push(`… and ${this.more} more`);
    throw new LeapfrogError('input', `${this.file}: ${n} problem${n === 1 ? '' : 's'} in this ${what}; fix ${n === 1 ? 'it' : 'them'} and run again:`, {
      details: this.list,
    });
  }
}

export function formatPath(at: Path): string {
  let out = '';
  for (const k of at) out += typeof k === 'number' ? `[${k}]` : !/^[\w-]+$/.test(k) ? `[${JSON.stringify(k)}]` : out === '' ? k : `.${k}`;
  return out;
}

