// A reference for the launch case: the least a Node program can do to run N commands P at a time
// (child_process.spawn, no state, no files). What any Node-based launcher starts from here.
// usage: node node-spawn-loop.mjs N P COMMAND
import { spawn } from 'node:child_process';

const [n, p, command] = [Number(process.argv[2]), Number(process.argv[3]), process.argv[4]];
let started = 0;
let ended = 0;
function next() {
  if (started >= n) return;
  started++;
  spawn(command, [], { stdio: 'ignore' }).on('exit', () => {
    if (++ended === n) process.exit(0);
    next();
  });
}
for (let i = 0; i < p; i++) next();
