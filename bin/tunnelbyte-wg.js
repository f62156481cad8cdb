#!/usr/bin/env node
import { runTunnelbyteWg } from '../dist/src/cli/tunnelbyte-wg.js';

await runTunnelbyteWg(process.argv.slice(2));
