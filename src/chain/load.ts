import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { inputError, LeapfrogError } from '../errors.js';
import type { RawChain } from './raw.js';
import { readAndParse, schemaProblems, validateChain, validateEnv } from './source.js';
import { argvModel, checkTemplate, configModel, namesVariable } from './template.js';
import { argvCellHint, CELL, cellExpectations, configCellHint, databaseProblem, defaultInPerCell, expandCells, projectCells, stepCells } from './cells.js';
import type { BlockerDef, Chain, EnvDef, Expectation, ProjectDef, ReleaseDef, RewriteDef, StepDef, StepKind, VersionProbe } from './types.js';
import { parseExpectation } from './version.js';
import { notARead } from './read-query.js';

/**
 * Loading untrusted chain and env files: parse (YAML or JSON), validate against
 * the schema, then check what a schema cannot say (references, shapes that
 * depend on the probe kind). Every problem is collected and reported at once,
 * each as `file:line:column: field: what is wrong`.
 */

// ---- chains ---------------------------------------------------------------

const DEFAULT_TIMEOUT_S = 3600;
const DEFAULT_MAX_RUNS = 1000;

function parseProbe(raw: unknown): VersionProbe | string {
  if (raw === 'sqlalchemy-migrate') return { kind: 'sqlalchemy-migrate', repositories: undefined };
  if (raw === 'alembic') return { kind: 'alembic' };
  if (raw === 'alembic-else-sqlalchemy-migrate') return { kind: 'alembic-else-sqlalchemy-migrate', repositories: undefined };
  if (typeof raw === 'string') return `unknown version probe "${raw}"; use sqlalchemy-migrate, alembic, alembic-else-sqlalchemy-migrate, or { kind: sql, query: … }`;
  const o = raw as { kind?: string; repositories?: string[]; query?: string; numeric?: boolean };
  switch (o.kind) {
    case 'sqlalchemy-migrate':
      if (o.query !== undefined || o.numeric !== undefined) return 'query/numeric belong to kind: sql';
      return { kind: 'sqlalchemy-migrate', repositories: o.repositories };
    case 'alembic-else-sqlalchemy-migrate':
      if (o.query !== undefined || o.numeric !== undefined) return 'query/numeric belong to kind: sql';
      return { kind: 'alembic-else-sqlalchemy-migrate', repositories: o.repositories };
    case 'alembic':
      if (o.query !== undefined || o.numeric !== undefined || o.repositories !== undefined) return 'kind: alembic takes no other keys';
      return { kind: 'alembic' };
    case 'sql':
      if (o.query === undefined) return 'kind: sql needs a query';
      if (o.repositories !== undefined) return 'repositories belong to kind: sqlalchemy-migrate';
      if (notARead(o.query)) return `query ${notARead(o.query)}`;
      return { kind: 'sql', query: o.query, numeric: o.numeric ?? false };
    default:
      return 'needs a kind: sqlalchemy-migrate, alembic, alembic-else-sqlalchemy-migrate or sql';
  }
}

export function loadChain(file: string, options: { envDir?: string } = {}): Chain {
  const abs = path.resolve(file);
  const shown = path.relative(process.cwd(), abs) || abs;
  const { data, problems: p, bytes } = readAndParse(abs, shown, 'chain');
  schemaProblems(validateChain, data, p);
  p.throwIfAny('chain');
  const raw = data as RawChain;

  const projects: Record<string, ProjectDef> = {};
  for (const [pname, rp] of Object.entries(raw.projects)) {
    const version: Record<string, VersionProbe> = {};
    for (const [db, rawProbe] of Object.entries(rp.version)) {
      if (!(db in rp.databases)) {
        p.add(['projects', pname, 'version', db], `"${db}" is not one of this project's databases (${Object.keys(rp.databases).join(', ')})`, true);
        continue;
      }
      const probe = parseProbe(rawProbe);
      if (typeof probe === 'string') p.add(['projects', pname, 'version', db], probe);
      else version[db] = probe;
    }
    for (const db of Object.keys(rp.databases)) {
      if (!(db in rp.version)) p.add(['projects', pname, 'version'], `no version probe for database "${db}"`);
    }
    const start: Record<string, Expectation> = {};
    for (const [db, rawV] of Object.entries(rp.start ?? {})) {
      const probe = version[db];
      if (!(db in rp.databases)) {
        p.add(['projects', pname, 'start', db], `"${db}" is not one of this project's databases`, true);
        continue;
      }
      if (!probe) continue;
      const e = parseExpectation(probe, rawV);
      if (typeof e === 'string') p.add(['projects', pname, 'start', db], e);
      else start[db] = e;
    }
    const blockers: BlockerDef[] = [];
    const seenBlockers = new Set<string>();
    (rp.blockers ?? []).forEach((rb, bi) => {
      const at = ['projects', pname, 'blockers', bi];
      if (seenBlockers.has(rb.name)) p.add([...at, 'name'], `blocker "${rb.name}" appears twice in project ${pname}`);
      seenBlockers.add(rb.name);
      const database = rb.database ?? Object.keys(rp.databases)[0]!;
      if (!(database in rp.databases)) p.add([...at, 'database'], `"${database}" is not a database of project ${pname} (${Object.keys(rp.databases).join(', ')})`);
      const write = notARead(rb.query);
      if (write) p.add([...at, 'query'], write);
      blockers.push({ name: rb.name, database, query: rb.query, message: rb.message, fixedBy: rb['fixed-by'] });
    });
    for (const db of Object.keys(rp.create ?? {})) {
      if (!(db in rp.databases)) p.add(['projects', pname, 'create', db], `"${db}" is not one of this project's databases (${Object.keys(rp.databases).join(', ')})`, true);
      else if (db in (rp.start ?? {})) p.add(['projects', pname, 'create', db], `"${db}" exists at the chain's start (start: lists it): there is nothing to create`, true);
    }
    const rehearsal: RewriteDef[] = [];
    (rp.rehearsal ?? []).forEach((rw, wi) => {
      const at = ['projects', pname, 'rehearsal', wi];
      if (!(rw.database in rp.databases)) p.add([...at, 'database'], `"${rw.database}" is not a database of project ${pname} (${Object.keys(rp.databases).join(', ')})`);
      const notRow = notARowChange(rw.sql);
      if (notRow) p.add([...at, 'sql'], notRow);
      rehearsal.push({ database: rw.database, sql: rw.sql, why: rw.why });
    });
    for (const db of Object.keys(rp.partial ?? {})) {
      if (!(db in rp.databases)) p.add(['projects', pname, 'partial', db], `"${db}" is not one of this project's databases (${Object.keys(rp.databases).join(', ')})`, true);
    }
    const cellConfig = Object.keys(rp.config ?? {}).filter((f) => namesVariable(rp.config![f]!, CELL));
    projects[pname] = {
      name: pname,
      databases: rp.databases,
      ...projectCells(pname, rp, p),
      ...(cellConfig.length > 0 ? { cellConfig } : {}),
      version,
      start,
      config: rp.config ?? {},
      blockers,
      ...(rp.create ? { create: rp.create } : {}),
      ...(rp.collations ? { collations: rp.collations } : {}),
      ...(rehearsal.length > 0 ? { rehearsal } : {}),
      ...(rp.partial ? { partial: rp.partial } : {}),
    };
  }

  const releases: ReleaseDef[] = [];
  const seenReleases = new Set<string>();
  raw.releases.forEach((rr, ri) => {
    if (seenReleases.has(rr.release)) p.add(['releases', ri, 'release'], `release "${rr.release}" appears twice; a chain walks each release once`);
    seenReleases.add(rr.release);
    const counters: Record<string, number> = {};
    const steps: StepDef[] = [];
    rr.steps.forEach((rs, si) => {
      const at = ['releases', ri, 'steps', si];
      const project = projects[rs.project];
      if (!project) {
        p.add([...at, 'project'], `unknown project "${rs.project}"; the chain declares ${Object.keys(raw.projects).join(', ')}`);
        return;
      }
      const kinds = (['sync', 'data', 'check'] as const).filter((k) => rs[k] !== undefined);
      if (kinds.length !== 1) {
        p.add(at, kinds.length === 0 ? 'a step needs one of sync, data or check' : `a step has exactly one of sync, data or check, not ${kinds.join(' and ')}`);
        return;
      }
      const kind: StepKind = kinds[0]!;
      const cells = stepCells(rs, project, at, p);
      const env = rs.env ?? rr.env;
      if (env === undefined) p.add(at, `no env: set env on the step or on release "${rr.release}"`);
      const expect: Record<string, Expectation> = {};
      if (kind === 'sync' && rs.expect === undefined) {
        p.add(at, 'a sync step must say which version it ends at (expect: { database: version })');
      }
      if (kind !== 'sync' && rs.expect !== undefined) p.add([...at, 'expect'], 'only sync steps have expect', true);
      let cellExpect: Record<string, Expectation> = {};
      for (const [db, rawV] of Object.entries(rs.expect ?? {})) {
        const probe = project.version[db];
        const unknown = databaseProblem(project, db, cells);
        if (unknown) {
          p.add([...at, 'expect', db], unknown, true);
          continue;
        }
        if (db === CELL) {
          const e = cellExpectations(project, cells!, rawV);
          if (typeof e === 'string') p.add([...at, 'expect', db], e);
          else cellExpect = e;
          continue;
        }
        if (!probe) continue;
        const e = parseExpectation(probe, rawV);
        if (typeof e === 'string') p.add([...at, 'expect', db], e);
        else expect[db] = e;
      }
      for (const key of ['needed-when', 'repeat-while-exit', 'max-runs', 'batch'] as const) {
        if (kind !== 'data' && rs[key] !== undefined) p.add([...at, key], `only data steps have ${key}`, true);
      }
      let neededWhen: StepDef['neededWhen'];
      const nw = rs['needed-when'];
      if (nw !== undefined) {
        const named = typeof nw === 'string' ? undefined : nw.database;
        const database = named ?? Object.keys(project.databases)[0]!;
        const unknown = databaseProblem(project, database, cells);
        if (named === undefined && cells !== undefined) p.add([...at, 'needed-when'], defaultInPerCell(project, 'needed-when'));
        else if (unknown) p.add([...at, 'needed-when', 'database'], unknown);
        neededWhen = { database, query: typeof nw === 'string' ? nw : nw.query };
        const write = notARead(neededWhen.query);
        if (write) p.add(typeof nw === 'string' ? [...at, 'needed-when'] : [...at, 'needed-when', 'query'], write);
      }
      const after = (rs.after ?? []).map((ref, ai) => {
        const [proj, rel] = ref.split('@') as [string, string];
        if (!projects[proj]) p.add([...at, 'after', ai], `unknown project "${proj}"`);
        else if (proj === rs.project) p.add([...at, 'after', ai], 'after: names other projects; steps of one project already run in order');
        return { project: proj, release: rel };
      });
      const touches = (rs.touches ?? []).map((t, ti) => {
        const dot = t.lastIndexOf('.');
        const database = dot < 0 ? Object.keys(project.databases)[0]! : t.slice(0, dot);
        const unknown = databaseProblem(project, database, cells);
        if (dot < 0 && cells !== undefined) p.add([...at, 'touches', ti], defaultInPerCell(project, 'touches', t));
        else if (unknown) p.add([...at, 'touches', ti], unknown);
        return { database, table: t.slice(dot + 1) };
      });
      counters[rs.project] = (counters[rs.project] ?? 0) + 1;
      const base: StepDef = {
        id: `${rr.release}/${rs.project}/${counters[rs.project]}`,
        release: rr.release,
        project: rs.project,
        kind,
        command: rs[kind]!.map(String),
        env: env ?? '',
        name: rs.name,
        why: rs.why,
        expect,
        neededWhen,
        repeatWhileExit: rs['repeat-while-exit'],
        maxRuns: rs['max-runs'] ?? (kind === 'data' ? DEFAULT_MAX_RUNS : 1),
        ...(rs.batch !== undefined ? { batch: rs.batch } : {}),
        timeoutMs: Math.round((rs.timeout ?? DEFAULT_TIMEOUT_S) * 1000),
        after,
        ...(rs.deletes ? { deletes: rs.deletes } : {}),
        ...(rs.touches ? { touches } : {}),
      };
      // A per-cell step is one StepDef per cell from here on (cells.ts says why at load, not in the planner).
      steps.push(...expandCells(base, cells, cellExpect));
    });
    releases.push({ release: rr.release, steps });
  });

  // after: must name a hop that exists and comes no later than this one, or the run could deadlock.
  const hopIndex = new Map<string, number>();
  releases.forEach((r, i) => r.steps.forEach((s) => hopIndex.set(`${s.project}@${r.release}`, i)));
  raw.releases.forEach((rr, ri) =>
    rr.steps.forEach((rs, si) =>
      (rs.after ?? []).forEach((ref, ai) => {
        const target = hopIndex.get(ref);
        if (target === undefined) {
          if (projects[ref.split('@')[0]!]) p.add(['releases', ri, 'steps', si, 'after', ai], `no hop "${ref}": that project has no steps in that release`);
        } else if (target > ri) {
          p.add(['releases', ri, 'steps', si, 'after', ai], `"${ref}" comes later in the chain than this step; that would wait forever`);
        }
      }),
    ),
  );
  // fixed-by names a step by id or by name. A name shared by several steps of
  // the project cannot say which one is meant; a name that matches nothing is
  // left to check-migrations, which reports that blocker as unfixed.
  for (const [pname, rp] of Object.entries(raw.projects)) {
    (rp.blockers ?? []).forEach((rb, bi) => {
      const ref = rb['fixed-by'];
      if (ref === undefined) return;
      const named = releases.flatMap((r) => r.steps).filter((s) => s.project === pname && s.name === ref && s.id !== ref && s.cell === undefined);
      if (named.length > 1) {
        p.add(['projects', pname, 'blockers', bi, 'fixed-by'], `"${ref}" names ${named.length} steps (${named.map((s) => s.id).join(', ')}); use the step id`);
      }
    });
  }
  // Templates are checked here, on every branch, so a mistake or an attempt
  // to reach outside the data model is an input error before anything runs.
  for (const [pname, def] of Object.entries(projects)) {
    for (const [file, text] of Object.entries(def.config)) {
      for (const t of checkTemplate(text, configModel(def, def.cells !== undefined), configCellHint(def))) p.addInside(['projects', pname, 'config', file], t.row, `template: ${t.message}`);
    }
    (def.rehearsal ?? []).forEach((rw, wi) => {
      for (const t of checkTemplate(rw.sql, configModel(def))) p.addInside(['projects', pname, 'rehearsal', wi, 'sql'], t.row, `template: ${t.message}`);
    });
  }
  raw.releases.forEach((rr, ri) =>
    rr.steps.forEach((rs, si) => {
      const def = projects[rs.project];
      const kind = (['sync', 'data', 'check'] as const).find((k) => rs[k] !== undefined);
      if (!def || !kind) return;
      const perCell = rs['per-cell'] !== undefined && rs['per-cell'] !== false && def.cells !== undefined;
      rs[kind]!.forEach((arg, ai) => {
        for (const t of checkTemplate(String(arg), argvModel(def, perCell), argvCellHint(def, perCell))) p.addInside(['releases', ri, 'steps', si, kind, ai], t.row, `template ${JSON.stringify(String(arg))}: ${t.message}`);
      });
    }),
  );
  p.throwIfAny('chain');

  const envDir = options.envDir ? path.resolve(options.envDir) : path.resolve(path.dirname(abs), raw.envs ?? '../envs');
  return {
    name: raw.chain,
    description: raw.description,
    file: abs,
    sha256: createHash('sha256').update(bytes).digest('hex'),
    envDir,
    projects,
    releases,
  };
}

// ---- envs -----------------------------------------------------------------

export function envFile(envDir: string, name: string): string | undefined {
  for (const ext of ['.yaml', '.yml', '.json']) {
    const f = path.join(envDir, name + ext);
    if (existsSync(f)) return f;
  }
  return undefined;
}

export function loadEnv(envDir: string, name: string): EnvDef {
  const file = envFile(envDir, name);
  if (!file) throw inputError(`env "${name}": no ${name}.yaml in ${envDir}; create it (see README, "Env files") or pass --envs DIR`);
  const shown = path.relative(process.cwd(), file) || file;
  const parsed = readAndParse(file, shown, 'env file');
  const p = parsed.problems;
  schemaProblems(validateEnv, parsed.data, p);
  p.throwIfAny('env file');
  const raw = parsed.data as { env: string; kind?: 'plain' | 'rootfs'; source: { file?: string; url?: string; sha256: string }; path?: string[]; vars?: Record<string, string> };
  if (raw.env !== name) p.add(['env'], `says "${raw.env}" but the file is named for "${name}"; they must agree`);
  if ((raw.source.file === undefined) === (raw.source.url === undefined)) p.add(['source'], 'needs exactly one of file or url');
  for (const [i, d] of (raw.path ?? []).entries()) {
    if (path.isAbsolute(d) || d.split(/[\\/]/).includes('..')) p.add(['path', i], 'must be a directory inside the env (relative, no "..")');
  }
  p.throwIfAny('env file');
  return {
    name,
    file,
    kind: raw.kind ?? 'plain',
    source: raw.source.file !== undefined
      ? { kind: 'file', location: path.resolve(path.dirname(file), raw.source.file), sha256: raw.source.sha256 }
      : { kind: 'url', location: raw.source.url!, sha256: raw.source.sha256 },
    path: raw.path ?? ['bin'],
    vars: raw.vars ?? {},
  };
}

/** Every env a chain needs, loaded; all problems across files reported together. */
export function loadChainEnvs(chain: Chain): Map<string, EnvDef> {
  const names = [...new Set(chain.releases.flatMap((r) => r.steps.map((s) => s.env)))];
  const envs = new Map<string, EnvDef>();
  const errors: string[] = [];
  for (const n of names) {
    try {
      envs.set(n, loadEnv(chain.envDir, n));
    } catch (err) {
      if (!(err instanceof LeapfrogError)) throw err;
      errors.push(err.message, ...err.details.map((d) => '  ' + d));
    }
  }
  if (errors.length > 0) throw new LeapfrogError('input', `chain ${chain.name}: its env files have problems:`, { details: errors });
  return envs;
}

/**
 * A `rehearsal:` statement runs in leapfrog's own process, outside any
 * sandbox, on the copy: it may change rows and nothing else. Chain files are
 * untrusted until someone runs them, and a statement that writes files
 * (SQLite's VACUUM INTO and ATTACH, MySQL's INTO OUTFILE/DUMPFILE) or reads
 * them (LOAD_FILE, LOAD DATA) would carry the copy, production's data, out of
 * it. One statement only is enforced where it runs (prepare(), no
 * multipleStatements).
 */
export function notARowChange(sql: string): string | undefined {
  const body = sql.replace(/^(\s+|--[^\n]*\n|#[^\n]*\n|\/\*[\s\S]*?\*\/)*/, '');
  const first = /^[A-Za-z]+/.exec(body)?.[0]?.toUpperCase();
  if (!first || !['UPDATE', 'INSERT', 'DELETE', 'REPLACE'].includes(first)) {
    return `a rehearsal statement changes rows of the copy: UPDATE, INSERT, DELETE or REPLACE, not ${first ?? JSON.stringify(body.slice(0, 20))}`;
  }
  const bad = /\b(INTO\s+(OUTFILE|DUMPFILE)|LOAD_FILE|LOAD\s+DATA|ATTACH|VACUUM)\b/i.exec(sql);
  if (bad) return `a rehearsal statement may not read or write files (${bad[0]}): it runs in leapfrog itself, outside the sandbox`;
  return undefined;
}
