import { VERSION } from './version.js';

const args = process.argv.slice(2);
if (args.includes('--version') || args.includes('-v')) {
  console.log(`tunnelbyte-wg v${VERSION}\n\nUserspace WireGuard daemon for Linux (wireguard-go compatible).`);
  process.exit(0);
}
console.error(`Usage: tunnelbyte-wg [-f/--foreground] INTERFACE-NAME`);
process.exit(args.length === 0 ? 2 : 1);
