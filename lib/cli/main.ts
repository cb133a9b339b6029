#!/usr/bin/env node
/** The `diffvit` executable: runs the command line (lib/cli/cli.ts) and exits with its code. */
import { runCli } from './cli.js';

process.exitCode = await runCli(process.argv.slice(2));
