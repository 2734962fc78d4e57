#!/usr/bin/env node
// Entry point of the `facegate` command.
import { main } from './cli.js';

await main();
