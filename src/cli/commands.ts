import type { CommandModule } from 'yargs';
import type { Output } from './output.js';
import { submitCommand } from './submit.js';

/** A command module factory: receives the output sink, returns a yargs command. */
export type CommandFactory = (output: Output) => CommandModule<any, any>;

/** Every `themis` command, one module each (registered here so the order of --help is stable). */
export const commands: CommandFactory[] = [submitCommand];
