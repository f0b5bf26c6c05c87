// A reference for the launch case: what the packer's file work for one single-step run costs on its
// own, done by themis's own store functions in a loop (claim, status read under the claim, final
// status write, summary entry, release), with no launcher, no events and no child. Prints the CPU
// milliseconds it used per run, so the launch case can show how much of a launch's CPU is the disk.
// usage: node store-ops.mjs ENSEMBLE_DIR
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const root = path.resolve(process.argv[2]);
const dist = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../../dist');
const load = (m) => import(pathToFileURL(path.join(dist, m)).href);
const { tryClaim, releaseClaim } = await load('store/claim.js');
const { fileServerNow } = await load('store/clock.js');
const { readEnsemble, readStatus, writeStatus, addHistory } = await load('store/records.js');
const { readIndexTable } = await load('store/run-index.js');
const { SummaryLog } = await load('store/summary.js');
const { setupPaths } = await load('store/layout.js');

const setupDir = path.join(root, '.themis_setup');
const ensemble = readEnsemble(setupDir);
const table = readIndexTable(setupDir, ensemble.root);
const packerId = `store-ops-${process.pid}`;
const who = { jobId: null, packerId, ownerDir: setupPaths(setupDir).packersDir };
const opts = { leaseMs: 60_000, now: () => fileServerNow(setupDir) };
const summary = new SummaryLog(setupDir, packerId, ensemble.createdAt);
const dirs = [];
for (let i = 0; i < table.count; i++) dirs.push(table.entryAt(i).dir);

const before = process.cpuUsage();
for (const dir of dirs) {
  const got = tryClaim(dir, who, opts);
  if (!got) throw new Error(`${dir}: claimed by someone else`);
  const status = readStatus(dir);
  const at = new Date().toISOString();
  const final = addHistory({ ...status, status: 'successful', exitCode: 0, endedAt: at }, 'successful', undefined, at);
  writeStatus(dir, final); // sets final.rev
  summary.final(status.id, final.rev, 'successful', 0, null);
  releaseClaim(got.claim, opts.leaseMs);
}
const used = process.cpuUsage(before);
summary.close(false);
process.stdout.write(`${JSON.stringify({ runs: dirs.length, cpuMsPerRun: (used.user + used.system) / 1000 / dirs.length })}\n`);
