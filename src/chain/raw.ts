/**
 * A chain file as written, once the schema (schema.ts) has accepted it:
 * what load.ts turns into the Chain the planner reads (types.ts).
 */

export interface RawStep {
  project: string;
  env?: string;
  name?: string;
  why?: string;
  sync?: (string | number)[];
  data?: (string | number)[];
  check?: (string | number)[];
  expect?: Record<string, unknown>;
  'needed-when'?: string | { database?: string; query: string };
  'repeat-while-exit'?: number;
  'max-runs'?: number;
  batch?: number;
  timeout?: number;
  after?: string[];
  deletes?: string[];
  touches?: string[];
  'per-cell'?: boolean | string[];
}
export interface RawChain {
  chain: string;
  description?: string;
  envs?: string;
  projects: Record<
    string,
    {
      databases: Record<string, string>;
      servers?: Record<string, string>;
      cells?: string[];
      version: Record<string, unknown>;
      start?: Record<string, unknown>;
      config?: Record<string, string>;
      create?: Record<string, { charset?: string; collation?: string }>;
      collations?: string[];
      rehearsal?: { database: string; sql: string; why?: string }[];
      partial?: Record<string, 'rerun'>;
      blockers?: { name: string; database?: string; query: string; message: string; 'fixed-by'?: string }[];
    }
  >;
  releases: { release: string; env?: string; description?: string; steps: RawStep[] }[];
}
