/**
 * JSON Schemas for chain and env files. Unknown keys are errors everywhere
 * (additionalProperties: false): a typo such as `expects:` must not be
 * silently ignored in a tool that touches production databases.
 */

const name = { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9._-]*$' } as const;
const argv = {
  type: 'array',
  minItems: 1,
  items: { type: ['string', 'number'] },
} as const;

/** Shape depends on the probe kind; checked in load.ts. */
const versionValue = { type: ['integer', 'string', 'array', 'object'] } as const;

/** A name (`sqlalchemy-migrate`, `alembic`) or an object with `kind`; checked in load.ts. */
const probe = {
  type: ['string', 'object'],
  properties: {
    kind: { enum: ['sqlalchemy-migrate', 'alembic', 'alembic-else-sqlalchemy-migrate', 'sql'] },
    repositories: { type: 'array', minItems: 1, items: { type: 'string', minLength: 1 }, uniqueItems: true },
    query: { type: 'string', minLength: 1 },
    numeric: { type: 'boolean' },
  },
  additionalProperties: false,
} as const;

export const chainSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['chain', 'projects', 'releases'],
  properties: {
    chain: name,
    description: { type: 'string' },
    envs: { type: 'string', minLength: 1 },
    projects: {
      type: 'object',
      minProperties: 1,
      propertyNames: name,
      additionalProperties: {
        type: 'object',
        additionalProperties: false,
        required: ['databases', 'version'],
        properties: {
          databases: { type: 'object', minProperties: 1, propertyNames: name, additionalProperties: name },
          // Logical database → the chain's name for the server it lives on (`--db NAME=URL` places it).
          servers: { type: 'object', propertyNames: name, additionalProperties: name },
          // The logical databases that are cells (nova's cell0, cell1…), in the order per-cell steps run.
          cells: { type: 'array', minItems: 1, uniqueItems: true, items: name },
          version: { type: 'object', minProperties: 1, additionalProperties: probe },
          start: { type: 'object', additionalProperties: versionValue },
          config: { type: 'object', propertyNames: name, additionalProperties: { type: 'string' } },
          create: {
            type: 'object',
            propertyNames: name,
            additionalProperties: {
              type: 'object',
              additionalProperties: false,
              properties: { charset: { type: 'string', pattern: '^[A-Za-z0-9_]+$' }, collation: { type: 'string', pattern: '^[A-Za-z0-9_]+$' } },
            },
          },
          collations: { type: 'array', minItems: 1, uniqueItems: true, items: { type: 'string', pattern: '^[A-Za-z0-9_]+$' } },
          rehearsal: {
            type: 'array',
            items: {
              type: 'object',
              additionalProperties: false,
              required: ['database', 'sql'],
              properties: { database: name, sql: { type: 'string', minLength: 1 }, why: { type: 'string' } },
            },
          },
          partial: { type: 'object', propertyNames: name, additionalProperties: { enum: ['rerun'] } },
          blockers: {
            type: 'array',
            items: {
              type: 'object',
              additionalProperties: false,
              required: ['name', 'query', 'message'],
              properties: {
                name: { type: 'string', minLength: 1 },
                database: name,
                query: { type: 'string', minLength: 1 },
                message: { type: 'string', minLength: 1 },
                'fixed-by': { type: 'string', minLength: 1 },
              },
            },
          },
        },
      },
    },
    releases: {
      type: 'array',
      minItems: 1,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['release', 'steps'],
        properties: {
          release: name,
          env: name,
          description: { type: 'string' },
          steps: {
            type: 'array',
            minItems: 1,
            items: {
              type: 'object',
              additionalProperties: false,
              required: ['project'],
              properties: {
                project: name,
                env: name,
                name: { type: 'string' },
                why: { type: 'string' },
                sync: argv,
                data: argv,
                check: argv,
                expect: { type: 'object', minProperties: 1, additionalProperties: versionValue },
                'needed-when': {
                  type: ['string', 'object'],
                  minLength: 1,
                  additionalProperties: false,
                  required: ['query'],
                  properties: { database: name, query: { type: 'string', minLength: 1 } },
                },
                // true: once per cell of the project, in its declared order; a list: once per cell named.
                'per-cell': { type: ['boolean', 'array'], minItems: 1, uniqueItems: true, items: name },
                'repeat-while-exit': { type: 'integer', minimum: 1, maximum: 255 },
                'max-runs': { type: 'integer', minimum: 1 },
                batch: { type: 'integer', minimum: 1 },
                timeout: { type: 'number', exclusiveMinimum: 0 },
                after: { type: 'array', items: { type: 'string', pattern: '^[A-Za-z0-9._-]+@[A-Za-z0-9._-]+$' } },
                deletes: { type: 'array', minItems: 1, uniqueItems: true, items: { type: 'string', pattern: '^[A-Za-z0-9_$]+$' } },
                // `table` in the project's first database, or `database.table` (a logical database of the project).
                touches: { type: 'array', minItems: 1, uniqueItems: true, items: { type: 'string', pattern: '^([A-Za-z0-9][A-Za-z0-9._-]*\\.)?[A-Za-z0-9_$]+$' } },
              },
            },
          },
        },
      },
    },
  },
} as const;

export const envSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['env', 'source'],
  properties: {
    env: name,
    description: { type: 'string' },
    /** plain: a tree steps run from on the host; rootfs: a whole root filesystem steps run inside (bubblewrap). */
    kind: { enum: ['plain', 'rootfs'] },
    /** How the tarball was made (leapfrog envs build writes it): for people, not read by leapfrog. */
    build: { type: 'object' },
    source: {
      type: 'object',
      additionalProperties: false,
      required: ['sha256'],
      properties: {
        file: { type: 'string', minLength: 1 },
        url: { type: 'string', pattern: '^https?://' },
        sha256: { type: 'string', pattern: '^[0-9a-f]{64}$' },
      },
    },
    path: { type: 'array', items: { type: 'string', minLength: 1 } },
    vars: { type: 'object', propertyNames: { pattern: '^[A-Za-z_][A-Za-z0-9_]*$' }, additionalProperties: { type: 'string' } },
  },
} as const;
