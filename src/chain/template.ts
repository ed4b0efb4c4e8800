import { createRequire } from 'node:module';
import type { Template } from 'liquidjs';
import { LeapfrogError } from '../errors.js';
import type { DatabaseAddress } from '../database/url.js';
import { containsSecret } from '../report/secrets.js';
import type { Chain, ProjectDef, StepDef } from './types.js';

/**
 * Rendering the chain's templates: config files (which may hold the
 * password, and are written mode 0600) and step argv (which must not: argv
 * is visible to every user of the machine through /proc).
 *
 * Chain files come from vendors, colleagues and the internet, so a template
 * is untrusted input. nunjucks evaluated `{{ range.constructor("return
 * process")() }}` (it compiles templates to JavaScript); LiquidJS never
 * compiles to code and has no function calls
 * (https://liquidjs.com/tutorials/differences.html). On top of that:
 * - strictVariables / strictFilters: an unknown name is an error, not "";
 * - ownPropertyOnly: `db.constructor`, `__proto__` are not reachable
 *   (https://liquidjs.com/api/interfaces/LiquidOptions.html#ownPropertyOnly);
 * - only the tags a config needs (if, unless, case, raw, comment): no
 *   include/render/layout (they read files), no assign/for/tablerow/cycle;
 * - jsTruthy: `{% if db.main.password %}` is false for "" as it was with
 *   nunjucks (Liquid's own truthiness counts "" as true);
 * - parse, render and memory limits, so a template cannot stall a run.
 * `checkTemplate` checks every variable a template names against the data
 * model below at chain load, so a mistake is an input error with file:line.
 */

const ALLOWED_TAGS = new Set(['if', 'unless', 'case', 'raw', 'comment']);

// LiquidJS is CommonJS: `import` would have Node scan its 180 KB for export names before
// loading it (cjs-module-lexer: 3-4 times what `require` takes); `require` loads it as it is.
const { Liquid } = createRequire(import.meta.url)('liquidjs') as typeof import('liquidjs');

const engine = new Liquid({
  strictVariables: true,
  strictFilters: true,
  ownPropertyOnly: true,
  jsTruthy: true,
  cache: false,
  relativeReference: false,
  parseLimit: 1 << 20,
  renderLimit: 1000,
  memoryLimit: 16 << 20,
  // Without a locale, LiquidJS resolves the default one at construction by building an
  // Intl.DateTimeFormat (loading ICU's locale data: ~20 ms of every command's start-up), for
  // the `date` filter alone. Intl reads an empty list of locales as the default locale, so the
  // filter formats exactly as before, and only a template that uses it pays.
  locale: [] as unknown as string,
  // Never read a file, whatever a future tag tries.
  fs: {
    exists: async () => false,
    existsSync: () => false,
    readFile: async () => Promise.reject(new Error('templates cannot read files')),
    readFileSync: () => {
      throw new Error('templates cannot read files');
    },
    resolve: (_dir: string, file: string) => file,
  },
});
for (const tag of Object.keys(engine.tags)) if (!ALLOWED_TAGS.has(tag)) delete engine.tags[tag];

/** What one database offers a template; the password only to config files. */
const ADDRESS_FIELDS = ['url', 'redactedUrl', 'name', 'host', 'port', 'user', 'password', 'socket', 'path'] as const;

/** A data model: a leaf (a string) or named children. */
export type Shape = 'leaf' | { readonly [key: string]: Shape };

function addressShape(withPassword: boolean): Shape {
  return Object.fromEntries(ADDRESS_FIELDS.filter((f) => withPassword || f !== 'password').map((f) => [f, 'leaf' as const]));
}

function dbShape(project: ProjectDef, withPassword: boolean): Shape {
  const fields = addressShape(withPassword);
  return Object.fromEntries(Object.keys(project.databases).map((db) => [db, fields]));
}

/**
 * `cell` in a per-cell step and the config files it passes: the cell's
 * logical name, and its database's address as `db.<logical>` offers it
 * (`cell.db.url`, `cell.db.name`…). Not `cell.url`: an address has a
 * `name` field of its own (the database's name on the server).
 */
function cellShape(withPassword: boolean): Shape {
  return { name: 'leaf', db: addressShape(withPassword) };
}

/** What a project's config file templates may name; `cell` only when rendered for a cell. */
export function configModel(project: ProjectDef, cell = false): Shape {
  return { db: dbShape(project, true), project: 'leaf', ...(cell ? { cell: cellShape(true) } : {}) };
}

/**
 * What a step's argv templates may name: no password (argv is public), the
 * project's config files; in a per-cell step, `cell` and the config files
 * rendered once per cell (elsewhere there is no cell to render them for).
 */
export function argvModel(project: ProjectDef, cell = false): Shape {
  const files = Object.keys(project.config).filter((f) => cell || !project.cellConfig?.includes(f));
  return {
    db: dbShape(project, false),
    config: Object.fromEntries(files.map((f) => [f, 'leaf' as const])),
    project: 'leaf',
    release: 'leaf',
    empty_dir: 'leaf',
    ...(cell ? { cell: cellShape(false) } : {}),
  };
}

/** Whether a template names `name` at its top level (`cell` in a config file makes it one per cell). A template that does not parse names nothing: checkTemplate reports it. */
export function namesVariable(text: string, name: string): boolean {
  if (!text.includes('{')) return false;
  try {
    const analysis = engine.analyzeSync(parse(text), { partials: false });
    return Object.values(analysis.variables).some((uses) => uses.some((v) => v.segments[0] === name));
  } catch {
    return false;
  }
}

export interface TemplateProblem {
  /** 1-based row and column inside the template text. */
  row: number;
  col: number;
  message: string;
}

function parse(text: string): Template[] {
  return engine.parse(text);
}

/** Liquid's messages end with ", line:R, col:C" and a source excerpt; we say where ourselves. */
function liquidMessage(err: unknown): string {
  return String((err as Error).message ?? err).split('\n')[0]!.replace(/, line:\d+, col:\d+$/, '').trim();
}

function liquidPosition(err: unknown): { row: number; col: number } {
  const pos = (err as { token?: { getPosition?: () => [number, number] } }).token?.getPosition?.();
  return pos ? { row: pos[0], col: pos[1] } : { row: 1, col: 1 };
}

function describeModel(shape: Shape): string {
  return shape === 'leaf' ? '' : Object.keys(shape).join(', ') || '(nothing)';
}

/**
 * Every problem in one template, without rendering it: syntax, tags and
 * filters that are not allowed, and variables outside `model` (on every
 * branch, not just the one a render would take).
 */
export function checkTemplate(text: string, model: Shape, hint?: (path: readonly string[]) => string | undefined): TemplateProblem[] {
  if (!text.includes('{')) return [];
  let tpl: Template[];
  try {
    tpl = parse(text);
  } catch (err) {
    const msg = liquidMessage(err).replace(/^tag "(\w+)" not found$/, `tag "$1" is not allowed here (allowed: ${[...ALLOWED_TAGS].join(', ')})`);
    return [{ ...liquidPosition(err), message: msg }];
  }
  const out: TemplateProblem[] = [];
  const analysis = engine.analyzeSync(tpl, { partials: false });
  for (const uses of Object.values(analysis.variables)) {
    for (const v of uses) {
      const problem = checkSegments(v.segments, model, hint);
      if (problem) out.push({ row: v.location.row, col: v.location.col, message: problem });
    }
  }
  return out;
}

function checkSegments(segments: readonly unknown[], model: Shape, hint?: (path: readonly string[]) => string | undefined): string | undefined {
  let shape: Shape = model;
  const seen: string[] = [];
  for (const s of segments) {
    if (typeof s !== 'string' && typeof s !== 'number') {
      return `${seen.join('.')}[…] looks a name up through another expression; write the name itself (e.g. ${seen.join('.') || 'db'}.main)`;
    }
    const name = String(s);
    if (shape === 'leaf') return `${[...seen, name].join('.')}: ${seen.join('.')} is a plain value with no fields`;
    const next: Shape | undefined = Object.prototype.hasOwnProperty.call(shape, name) ? shape[name] : undefined;
    if (next === undefined) {
      const why = hint?.([...seen, name]);
      if (why !== undefined) return `${[...seen, name].join('.')}: ${why}`;
      if (name === 'password' && seen.length === 2 && (seen[0] === 'db' || (seen[0] === 'cell' && seen[1] === 'db'))) {
        return `${[...seen, name].join('.')}: the password is not available to command lines (any user of the machine can read a process's argv); put it in a config file and pass {{ config['x.conf'] }}`;
      }
      const where = seen.length === 0 ? 'a template' : seen.join('.');
      return `${[...seen, name].join('.')} is not something templates can use: ${where} offers ${describeModel(shape)}`;
    }
    seen.push(name);
    shape = next;
  }
  if (shape !== 'leaf') return `${seen.join('.')} is not a value; name one of its fields: ${describeModel(shape)}`;
  return undefined;
}

function render(text: string, context: object, where: string): string {
  try {
    return String(engine.parseAndRenderSync(text, context));
  } catch (err) {
    throw new LeapfrogError('input', `${where}: template ${JSON.stringify(text)} cannot be rendered: ${liquidMessage(err)}`, { cause: err });
  }
}

type Addresses = Readonly<Record<string, DatabaseAddress>>;

/** A config file; one that names `cell` (ProjectDef.cellConfig) is rendered for one cell of the project. */
export function renderConfig(chain: Chain, project: ProjectDef, file: string, addresses: Addresses, cell?: string): string {
  const context = { db: addresses, project: project.name, ...(cell !== undefined ? { cell: { name: cell, db: addresses[cell] } } : {}) };
  return render(project.config[file]!, context, `${chain.file}: projects.${project.name}.config["${file}"]${cell !== undefined ? ` for cell ${cell}` : ''}`);
}

/** A `rehearsal:` rewrite's SQL, with the copy's addresses (the config files' data model: the password is there). */
export function renderRewrite(chain: Chain, project: ProjectDef, index: number, addresses: Addresses): string {
  return render(project.rehearsal![index]!.sql, { db: addresses, project: project.name }, `${chain.file}: projects.${project.name}.rehearsal[${index}].sql`);
}

/**
 * A step's argv. `configPaths` maps each of the project's config files to
 * where it is rendered; `emptyDir` is the directory `{{ empty_dir }}` names.
 */
export function renderArgv(chain: Chain, step: StepDef, addresses: Addresses, configPaths: Readonly<Record<string, string>>, emptyDir: string): string[] {
  // No password in the argv context: commands get it through a config file.
  const db: Record<string, Omit<DatabaseAddress, 'password'>> = {};
  for (const [k, a] of Object.entries(addresses)) {
    const { password: _omitted, ...rest } = a;
    db[k] = rest;
  }
  const context = { db, config: configPaths, project: step.project, release: step.release, empty_dir: emptyDir, ...(step.cell !== undefined ? { cell: { name: step.cell, db: db[step.cell] } } : {}) };
  return step.command.map((arg, i) => {
    const where = `${chain.file}: step ${step.id} (${step.kind}), argument ${i + 1}`;
    const out = render(arg, context, where);
    for (const a of Object.values(addresses)) {
      if (a.password !== '' && containsSecret(out, a.password)) {
        throw new LeapfrogError('input', `${where}: renders the database password (raw or encoded) into the command line, where any user of the machine can read it; reference a config file instead (e.g. {{ config['x.conf'] }})`);
      }
    }
    return out;
  });
}
