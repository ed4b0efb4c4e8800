/**
 * The chain and env validators are compiled ahead of time (start-up); this
 * keeps the compiled file the schema's, so a schema change without
 * `npm run schema:compile` fails here rather than validating the old shape.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { VALIDATORS, validatorsSource } from '../tools/compile-schema.js';

test('src/chain/validators.ts is what tools/compile-schema.ts writes from schema.ts (run `npm run schema:compile`)', () => {
  assert.ok(readFileSync(VALIDATORS, 'utf8') === validatorsSource(), 'src/chain/validators.ts is stale: run `npm run schema:compile` and commit it');
});
