#!/usr/bin/env node
import { runTunnelbyte } from '../dist/src/cli/tunnelbyte.js';

await runTunnelbyte(process.argv);
