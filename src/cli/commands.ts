import type { CommandModule } from 'yargs';
import type { Output } from './output.js';
import { submitCommand } from './submit.js';
import { addCommand, genCommand } from './gen.js';
import { statusCommand } from './status.js';
import { progressCommand } from './progress.js';
import { requeueCommand } from './requeue.js';
import { dequeueCommand } from './dequeue.js';
import { writeCommand } from './write.js';
import { rundirsCommand } from './rundirs.js';
import { dryRunCommand } from './dry-run.js';
import { postCommand } from './post.js';
import { completionCommand } from './completion.js';
import { clearCommand } from './clear.js';
import { displayCommand } from './display.js';
import { parseCommand, resultCommand, sampleCommand } from './runtime.js';
import { doctorCommand } from './doctor.js';
import { runCommand } from './run.js';

/** A command module factory: receives the output sink, returns a yargs command. */
export type CommandFactory = (output: Output) => CommandModule<any, any>;

/** Every `themis` command, one module each (registered here so the order of --help is stable). */
export const commands: CommandFactory[] = [genCommand,
  addCommand,
  submitCommand,
  runCommand,
  statusCommand,
  progressCommand,
  requeueCommand,
  dequeueCommand,
  writeCommand,
  rundirsCommand,
  displayCommand,
  dryRunCommand,
  postCommand,
  completionCommand,
  clearCommand,
  sampleCommand,
  resultCommand,
  parseCommand,
  doctorCommand];
