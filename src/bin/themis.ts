#!/usr/bin/env node
// `themis status`, run every few seconds by whoever watches an ensemble, starts without yargs
// (src/cli/direct.ts); every other command, and any other spelling of status, goes through it.
const argv = process.argv.slice(2);
const direct = argv[0] === 'status' ? await (await import('../cli/direct.js')).runDirect(argv) : undefined;
process.exitCode = direct ?? (await (await import('../cli/main.js')).runCli(argv));
