#!/usr/bin/env node
import { main } from "../dist/cli.mjs";
process.exitCode = main(process.argv.slice(2));
