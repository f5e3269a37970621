// The issue's crash sweep at the API level, on 4k blocks: a mixed data and
// namespace workload through the Volume API in data=ordered, data=journal and
// data=writeback, every write and flush recorded, and sampled crash states
// (CRASH_ALL=1: all of them) replayed and judged by e2fsck, the workload's
// durable facts, the stale-data marker and, for a few, the kernel's replay.
// See tests/helpers/crash-sweep.ts.

import * as nfs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { missingTools } from "./helpers/exec.js";
import { MODES, sweep } from "./helpers/crash-sweep.js";
import { rmrf } from "./helpers/bh-write.js";

const missing = missingTools(["e2fsck"], "e2fsprogs");
if (missing) console.log(`crash-sweep: skipped: ${missing}`);
const d = missing ? describe.skip : describe;

let work: string;
beforeAll(() => { work = nfs.mkdtempSync(path.join(os.tmpdir(), "ext4wasm-crashsweep-")); });
afterAll(() => { if (work) rmrf(work); });

const BUDGET = Number(process.env.CRASH_BUDGET ?? 60);

d("crash states of a mixed API workload replay clean with every durable fact (4k)", () => {
  it.each(MODES.map((m) => [m.name, m] as const))("%s", async (_n, mode) => {
    const r = await sweep(work, mode, { blockSize: 4096, size: 16 << 20, seed: Number(process.env.CRASH_SEED ?? 101) + mode.name.length, ops: Number(process.env.CRASH_OPS ?? 250), budget: BUDGET, kernelStates: 3 });
    console.log(`crash-sweep 4k ${mode.name}: ${r.states} states at ${r.picked} of ${r.flushes} flushes (${r.ops} ops, ${r.events} events), kernel ${r.kernel}${r.kernelSkipped ? ` (skipped: ${r.kernelSkipped})` : ""}`);
    expect(r.states, "at least one state per flush picked").toBeGreaterThanOrEqual(r.picked);
    expect(r.picked).toBeGreaterThanOrEqual(Math.min(Math.ceil(BUDGET / 3), r.flushes) / 2);
  }, 200_000);
});
