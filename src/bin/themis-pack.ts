#!/usr/bin/env node
import { runPackCli } from '../cli/pack.js';

process.exitCode = await runPackCli(process.argv.slice(2));
