import { createRequire } from 'node:module';
import type { ErrorObject, ValidateFunction } from 'ajv';
import { CORE_SCHEMA, load } from 'js-yaml';
import type { Document, LineCounter, Node } from 'yaml';
import { inputError, LeapfrogError } from '../errors.js';
import { readSmallFile } from '../input-file.js';
import * as validators from './validators.js';

/**
 * Reading an untrusted chain or env file (YAML or JSON) and locating each
 * problem in it, as `file:line:column: field: what is wrong`, so every problem
 * is reported at once. What the problems are is load.ts's business.
 */

export type Path = readonly (string | number)[];

/**
 * Two YAML parsers, one meaning. `yaml` (eemeli/yaml) is the reference: its
 * Document knows where every node is, which is how a problem gets its line,
 * and its errors are the ones reported. It is also slow to start: loading it
 * and parsing the first chain cold was ~65 ms of every command (BENCHMARKS.md,
 * startup). js-yaml's YAML 1.2 core schema reads the same documents in a
 * fraction of that, so it reads a file first, and `yaml` is loaded only to
 * locate a problem or whenever js-yaml could mean something else: js-yaml
 * rejects the file (a syntax error, a duplicate key, an empty document: `yaml`
 * then says what is wrong, as before), the file has an alias (`yaml` bounds
 * how far aliases expand), a tag (`!!float 1` is 1 to js-yaml and "1" to
 * `yaml`) or a directive (`%YAML 1.1` changes `yaml`'s schema).
 * test/yaml-fast-path.test.ts holds the two to the same results.
 */
const require = createRequire(import.meta.url);
const yamlLib = (): typeof import('yaml') => require('yaml') as typeof import('yaml');

/** What js-yaml reads, or undefined when `yaml` must read it (above). */
export function quickParse(text: string): { data: unknown } | undefined {
  // A tag starts a token (`!!str`, `!x`); `!=` in SQL is none. A directive starts a line.
  // `yaml` refuses an implicit key longer than 1024 characters (the YAML spec's limit); js-yaml does not.
  if (/(?:^|[\s[{,])!(?!=)/.test(text) || /^%/m.test(text) || /^[^\n]{1025}/m.test(text)) return undefined;
  let data: unknown;
  try {
    data = load(text, { schema: CORE_SCHEMA, maxAliases: 0 });
  } catch {
    return undefined;
  }
  // A null key (`~:`) is "null" to js-yaml and "" to `yaml`; a key "null" is rare enough to leave to `yaml`.
  return data === undefined || hasKey(data, 'null') ? undefined : { data };
}

function hasKey(v: unknown, key: string): boolean {
  if (Array.isArray(v)) return v.some((x) => hasKey(x, key));
  if (v === null || typeof v !== 'object') return false;
  return Object.hasOwn(v, key) || Object.values(v).some((x) => hasKey(x, key));
}

/** The located document: parsed by `yaml` when a problem is first located. */
interface Located {
  doc: Document;
  lines: LineCounter;
}

function locatedDocument(text: string): Located {
  const { LineCounter, parseDocument } = yamlLib();
  const lines = new LineCounter();
  return { doc: parseDocument(text, { lineCounter: lines, prettyErrors: true, uniqueKeys: true }), lines };
}

const MAX_PROBLEMS = 50;

export class Problems {
  readonly list: string[] = [];
  private located: Located | undefined;
  constructor(
    private readonly file: string,
    private readonly source: Located | string,
  ) {}

  private document(): Located {
    this.located ??= typeof this.source === 'string' ? locatedDocument(this.source) : this.source;
    return this.located;
  }

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
    const { isScalar } = yamlLib();
    const block = isScalar(node) && (node.type === 'BLOCK_LITERAL' || node.type === 'BLOCK_FOLDED');
    const field = formatPath(at);
    const shownLine = line + row - (block ? 0 : 1);
    this.list.push(`${this.file}:${shownLine}:${row === 1 && !block ? col : 1}: ${field}: ${message}`);
  }

  private locate(at: Path, pointAtKey: boolean): { line: number; col: number; node: unknown } {
    const { isMap, isPair, isScalar } = yamlLib();
    // Walk down as far as the document goes; report the deepest node found.
    const { doc, lines } = this.document();
    let node: unknown = doc.contents;
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
    const pos = lines.linePos(offset);
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

function ajvPath(instancePath: string): (string | number)[] {
  if (instancePath === '') return [];
  return instancePath
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map((s) => (/^\d+$/.test(s) ? Number(s) : s));
}

// Compiled ahead of time from schema.ts (tools/compile-schema.ts): compiling at
// every start was most of a command's start-up.
export const validateChain = validators.validateChain as ValidateFunction;
export const validateEnv = validators.validateEnv as ValidateFunction;

function describeAjvError(e: ErrorObject): { at: (string | number)[]; message: string; key: boolean } {
  const at = ajvPath(e.instancePath);
  switch (e.keyword) {
    case 'additionalProperties': {
      const key = (e.params as { additionalProperty: string }).additionalProperty;
      return { at: [...at, key], message: `unknown key "${key}"`, key: true };
    }
    case 'required':
      return { at, message: `missing required key "${(e.params as { missingProperty: string }).missingProperty}"`, key: false };
    case 'type':
      return { at, message: `must be ${(e.params as { type: string | string[] }).type.toString().replace(/,/g, ' or ')}`, key: false };
    case 'enum':
      return { at, message: `must be one of ${(e.params as { allowedValues: unknown[] }).allowedValues.join(', ')}`, key: false };
    case 'pattern':
      return { at, message: `"${String(e.data)}" is not valid here (${patternHint(e.params as { pattern: string })})`, key: false };
    case 'propertyNames':
      return { at, message: `has a key that is not a valid name`, key: false };
    default:
      return { at, message: e.message ?? e.keyword, key: false };
  }
}

function patternHint(p: { pattern: string }): string {
  if (p.pattern.includes('@')) return 'expected project@release';
  if (p.pattern.includes('64')) return 'expected 64 lowercase hex digits';
  if (p.pattern.startsWith('^https?')) return 'expected an http:// or https:// URL';
  return 'letters, digits, ".", "_" and "-"';
}

/** Chains and env files are a few KB; anything this big is not one, and reading it would only cost memory. */
const MAX_FILE_BYTES = 1024 * 1024;

export interface Parsed {
  data: unknown;
  problems: Problems;
  bytes: Buffer;
}

/** `shown` is the name problems are reported under (relative to cwd when shorter). */
export function readAndParse(file: string, shown: string, what: string): Parsed {
  const bytes = readSmallFile(file, shown, what, MAX_FILE_BYTES);
  // YAML and JSON are text: a NUL byte means a binary file, whose parse errors would say nothing useful.
  const nul = bytes.indexOf(0);
  if (nul >= 0) throw inputError(`${shown}: is binary, not YAML or JSON (a NUL byte at offset ${nul}); give the ${what} itself`);
  const text = bytes.toString('utf8');
  const quick = quickParse(text);
  if (quick) return { data: quick.data, problems: new Problems(shown, text), bytes };
  const located = locatedDocument(text);
  const { doc } = located;
  const problems = new Problems(shown, located);
  if (doc.errors.length > 0) {
    for (const e of doc.errors) {
      const pos = e.linePos?.[0];
      problems.addLine(`${shown}:${pos?.line ?? 1}:${pos?.col ?? 1}: ${e.message.split('\n')[0]}`);
    }
    problems.throwIfAny(what);
  }
  let data: unknown;
  try {
    // yaml counts what each alias expands to and throws past the limit: a "billion laughs" document.
    data = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    throw inputError(`${shown}: its YAML aliases (*name) expand too far (${(err as Error).message}); a ${what} needs few or no aliases`);
  }
  return { data, problems, bytes };
}

export function schemaProblems(validate: ValidateFunction, data: unknown, problems: Problems): void {
  if (validate(data)) return;
  const seen = new Set<string>();
  for (const e of validate.errors ?? []) {
    const d = describeAjvError(e);
    const key = formatPath(d.at) + d.message;
    if (seen.has(key)) continue;
    seen.add(key);
    problems.add(d.at, d.message, d.key);
  }
}
