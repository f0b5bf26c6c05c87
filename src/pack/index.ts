// The packer: what `themis-pack` runs inside each allocation, and how to start one.
export { LAUNCHER_MODES, type LauncherMode } from './launch-policy.js';
export { PACK_EXIT } from './exit-policy.js';
export { runPacker, type PackerOptions, type PackerProgress, type PackerSummary } from './run-packer.js';
export { packBinary, packerArgs, spawnPacker } from './spawn-packer.js';
