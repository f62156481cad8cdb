import { readFileSync } from 'node:fs';

/** The package version (package.json, three levels above dist/src/control), for the OpenAPI document. */
export const VERSION: string = (
  JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }
).version;
