#!/usr/bin/env node
// The young generation stays at its first size instead of doubling up to
// 2 x 16 MiB: a tree walk keeps a little alive at every moment, so the
// nursery would otherwise grow to its maximum and hold that much garbage.
// The heap itself stays unbounded (no OOM on a wide directory); see
// docs/design.md, "Memory of the CLI walks". Runtimes without V8 flags skip it.
import * as v8 from "node:v8";
try { v8.setFlagsFromString("--semi-space-growth-factor=1"); } catch { /* not V8 */ }
const { main } = await import("../dist/cli.mjs");
process.exitCode = main(process.argv.slice(2));
