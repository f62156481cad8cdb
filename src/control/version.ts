import { readFileSync } from 'node:fs';

/**
 * The package version, read once from package.json (three levels above
 * dist/src/control): the OpenAPI document's version and the CLIs' --version.
 */
export const VERSION: string = (
  JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }
).version;
