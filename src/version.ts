import { readFileSync } from 'node:fs';

/** leapfrog's own version, from package.json; recorded with every run. */
export const LEAPFROG_VERSION: string = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
