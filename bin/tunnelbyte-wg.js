#!/usr/bin/env node
import '../dist/src/cli/tunnelbyte-wg.js';
