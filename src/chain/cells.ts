import type { Path, Problems } from './source.js';
import type { RawChain, RawStep } from './raw.js';
import type { Expectation, ProjectDef, StepDef, VersionProbe } from './types.js';
import { parseExpectation } from './version.js';

/**
 * A project's servers and cells, and per-cell steps (nova keeps one database
 * per cell, cell0 and cell1…, often on servers of their own, and `nova-manage
 * db sync` runs once per cell with that cell's config).
 *
 * A per-cell step is expanded here, at load, into one StepDef per cell, each
 * with its own id (`release/project/N.CELL`) and `cell` resolved to that
 * cell's logical database in its expect, needed-when and touches. Everything
 * after loading (the pure planner, the runner, the ledger, rollback's restore
 * points, check-migrations, the progress display) already works step by step
 * on logical databases: each copy is an ordinary step there, planned, run,
 * recorded, repeated (repeat-while-exit) and resumed on its own, and nothing
 * downstream has to learn what a cell is. Expanding in the planner instead
 * would have every reader of chain.releases (position, restore points,
 * evidence, estimates) expand it again.
 */

type RawProject = RawChain['projects'][string];

/** The logical name meaning "this cell's database" inside a per-cell step. */
export const CELL = 'cell';

const listOf = (rp: RawProject) => Object.keys(rp.databases).join(', ');

/** `servers:` and `cells:` of one project, checked against its databases. */
export function projectCells(pname: string, rp: RawProject, p: Problems): Pick<ProjectDef, 'servers' | 'cells'> {
  for (const db of Object.keys(rp.servers ?? {})) {
    if (!(db in rp.databases)) p.add(['projects', pname, 'servers', db], `"${db}" is not one of this project's databases (${listOf(rp)})`, true);
  }
  (rp.cells ?? []).forEach((db, i) => {
    if (!(db in rp.databases)) p.add(['projects', pname, 'cells', i], `"${db}" is not one of this project's databases (${listOf(rp)})`);
  });
  if (rp.cells && CELL in rp.databases) {
    p.add(['projects', pname, 'databases', CELL], `a project with cells cannot name a database "${CELL}": in a per-cell step, "${CELL}" means the current cell's database`, true);
  }
  return { ...(rp.servers ? { servers: rp.servers } : {}), ...(rp.cells ? { cells: rp.cells } : {}) };
}

/** The cells a step runs for, in the project's order; undefined: not a per-cell step. */
export function stepCells(rs: RawStep, project: ProjectDef, at: Path, p: Problems): readonly string[] | undefined {
  const per = rs['per-cell'];
  if (per === undefined || per === false) return undefined;
  if (!project.cells) {
    p.add([...at, 'per-cell'], `project ${project.name} declares no cells; list them (projects.${project.name}.cells: [cell0, cell1]) or drop per-cell`);
    return [];
  }
  if (per === true) return project.cells;
  per.forEach((c, i) => {
    if (!project.cells!.includes(c)) p.add([...at, 'per-cell', i], `"${c}" is not a cell of project ${project.name} (${project.cells!.join(', ')})`);
  });
  return project.cells.filter((c) => per.includes(c));
}

/**
 * Whether `db` names a database of the step's project: a logical database, or
 * `cell` in a per-cell step. Otherwise the problem, said once.
 */
export function databaseProblem(project: ProjectDef, db: string, cells: readonly string[] | undefined): string | undefined {
  if (db in project.databases) return undefined;
  if (db === CELL && cells !== undefined) return undefined;
  if (db === CELL) {
    return project.cells
      ? `"${CELL}" means the current cell's database, and this step is not per-cell (per-cell: true, or a list of project ${project.name}'s cells)`
      : `"${CELL}" means the current cell's database in a per-cell step, and project ${project.name} declares no cells`;
  }
  return `"${db}" is not a database of project ${project.name} (${Object.keys(project.databases).join(', ')})`;
}

/**
 * A per-cell step's needed-when or touches that leaves the database to the
 * default (the project's first, nova's api): every cell's copy would count
 * that one database, so a cell whose rows still need the migration would be
 * skipped as "not needed". In a per-cell step the database is said.
 */
export function defaultInPerCell(project: ProjectDef, what: 'needed-when' | 'touches', table?: string): string {
  const first = Object.keys(project.databases)[0]!;
  return what === 'needed-when'
    ? `a per-cell step runs once per cell: name the database its query counts in, { database: ${CELL}, query: … } for each cell's own (or { database: ${first}, query: … })`
    : `a per-cell step runs once per cell: write ${CELL}.${table} for each cell's own table (or ${first}.${table})`;
}

/**
 * `expect: { cell: V }` parsed against each cell's own probe; the first
 * problem only, as every cell would repeat it. Undefined values are never
 * returned for a cell whose probe is missing (its database has no probe:
 * reported under version:).
 */
export function cellExpectations(project: ProjectDef, cells: readonly string[], raw: unknown): Record<string, Expectation> | string {
  const out: Record<string, Expectation> = {};
  for (const c of cells) {
    const probe: VersionProbe | undefined = project.version[c];
    if (!probe) continue;
    const e = parseExpectation(probe, raw);
    if (typeof e === 'string') return `${e} (for cell ${c})`;
    out[c] = e;
  }
  return out;
}

/**
 * One step per cell: `base` (with `cell` as a logical name where the chain
 * wrote it) copied for each cell, `cell` resolved. Not per-cell: `base` alone.
 */
export function expandCells(base: StepDef, cells: readonly string[] | undefined, cellExpect: Readonly<Record<string, Expectation>>): StepDef[] {
  if (cells === undefined) return [base];
  return cells.map((cell) => {
    const to = (db: string) => (db === CELL ? cell : db);
    const expect: Record<string, Expectation> = {};
    for (const [db, e] of Object.entries(base.expect)) if (db !== CELL) expect[db] = e;
    if (cellExpect[cell] !== undefined) expect[cell] = cellExpect[cell]!;
    const step: StepDef = {
      ...base,
      id: `${base.id}.${cell}`,
      cell,
      expect,
      neededWhen: base.neededWhen && { ...base.neededWhen, database: to(base.neededWhen.database) },
    };
    if (base.touches) step.touches = base.touches.map((t) => ({ ...t, database: to(t.database) }));
    return step;
  });
}

/** Why a config file cannot name `cell`: its project has no cells to render it for. */
export function configCellHint(project: ProjectDef): (at: readonly string[]) => string | undefined {
  return (at) => (at[0] === CELL && !project.cells ? `project ${project.name} declares no cells (cells: [cell0, cell1]), so no config file can be rendered for one` : undefined);
}

/** `cell`, and a config file rendered once per cell, exist only in a step that runs once per cell. */
export function argvCellHint(project: ProjectDef, perCell: boolean): (at: readonly string[]) => string | undefined {
  return (at) => {
    if (perCell) return undefined;
    if (at[0] === CELL) return `only a per-cell step (per-cell: true, or a list of cells${project.cells ? '' : ', in a project that declares cells:'}) has a cell`;
    if (at[0] === 'config' && at.length === 2 && project.cellConfig?.includes(at[1]!)) return `config file ${at[1]} names cell, so it is rendered once per cell: only a per-cell step can pass it`;
    return undefined;
  };
}
