// fsx over the public API (tests/helpers/fsx.ts): a seeded random workload of
// writes (at and past EOF, unaligned, block and cluster edges), reads,
// truncates up and down, fallocate in every mode (default, keep size, punch
// hole, zero range, collapse and insert range), fsync and fdatasync, several
// descriptors on each of three files, close and reopen, drop_caches, sync,
// and unmount + remount, in data=ordered, data=writeback and data=journal on
// 4k, 1k and bigalloc images. The model is compared on every read and in
// full at checkpoints and remounts; e2fsck -fn must be clean at every
// remount and at the end, and at the end the kernel (a read-only loop mount)
// must read exactly the model's bytes.
//
// Replay or run long: FSX_SEED=<n> (one seed for every config), FSX_OPS=<n>
// (ops per config), FSX_CONFIG=<substring of a config name>. FSX_SHRINK=1
// shrinks a failure to a minimal op list (printed as JSON) for a regression test;
// FSX_TRACE=<file> appends each op to the file before it runs (for a hang).

import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkfs, mount, type Volume } from "../host/index.js";
import type { MkfsOptions } from "../host/mkfs/mkfs.js";
import { missingTools, runSync } from "./helpers/exec.js";
import { fileName, FsxFailure, type FsxModel, type FsxOp, replayFsx, runFsx, shrinkOps } from "./helpers/fsx.js";
import { loopMountSupport, withLoopMountSync } from "./helpers/kernel.js";

const missing = missingTools(["e2fsck"], "e2fsprogs");
if (missing) console.log(`fsx: skipped: ${missing}`);
const loop = missing ? { ok: false as const, reason: missing } : loopMountSupport();
if (!missing && !loop.ok) console.log(`fsx: the kernel's view is not compared: ${loop.reason}`);

const FIXED = { uuid: "7d3c2f10-5b4c-4d3e-8f2a-1b2c3d4e5f61", hashSeed: "1b2c3d4e-0000-4000-8000-0000000000f5" };

interface Config { name: string; mkfs: MkfsOptions; data: string; seed: number }
const GEOMETRIES: { name: string; mkfs: MkfsOptions }[] = [
  { name: "4k", mkfs: { size: "32M", blockSize: 4096 } },
  { name: "1k", mkfs: { size: "32M", blockSize: 1024 } },
  { name: "bigalloc", mkfs: { size: "64M", blockSize: 4096, features: "bigalloc", clusterSize: 16384 } },
];
const MODES = ["ordered", "writeback", "journal"];
const CONFIGS: Config[] = GEOMETRIES.flatMap((g, gi) => MODES.map((data, mi) => ({
  name: `${g.name} data=${data}`, mkfs: g.mkfs, data, seed: 0xf5a0 + gi * 16 + mi,
})));

const envInt = (name: string) => {
  const v = process.env[name];
  if (v === undefined || v === "") return undefined;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`${name}=${v}: not a whole number`);
  return n;
};
const SEED = envInt("FSX_SEED");
const OPS = envInt("FSX_OPS") ?? 2300; // 9 configs: over 20 000 ops per run
const ONLY = process.env.FSX_CONFIG;

let work: string;
beforeAll(() => { work = fs.mkdtempSync(path.join(os.tmpdir(), "ext4wasm-fsx-")); });
afterAll(() => { if (work) fs.rmSync(work, { recursive: true, force: true }); });

function fsck(img: string, when: string): void {
  const r = runSync("e2fsck", ["-fn", img], { okCodes: [0, 1, 2, 4, 8, 12] });
  expect(r.code, `e2fsck -fn ${when}:\n${r.stdout}\n${r.stderr}`).toBe(0);
}

function kernelMatches(img: string, model: FsxModel): void {
  withLoopMountSync(img, (mnt) => {
    model.files.forEach((f, i) => {
      const got = fs.readFileSync(path.join(mnt, fileName(i)));
      expect(got.length, `the kernel's size of ${fileName(i)}`).toBe(f.size);
      const want = Buffer.from(f.data.buffer, f.data.byteOffset, f.size);
      if (!got.equals(want)) {
        let at = 0;
        while (got[at] === want[at]) at++;
        expect.fail(`the kernel reads ${fileName(i)} byte ${at} as ${got[at]}, the model says ${want[at]}`);
      }
    });
  }, { readOnly: true });
}

/** Delta-debugs a failing op list on fresh images and prints the smallest that still fails. */
function shrink(c: Config, ops: FsxOp[]): void {
  const clusterSize = c.mkfs.clusterSize ?? c.mkfs.blockSize!;
  let n = 0;
  const fails = (cand: FsxOp[]): boolean => {
    const img = path.join(work, `shrink-${n++}.img`);
    mkfs(img, { ...FIXED, ...c.mkfs });
    const mountOptions = `data=${c.data}`;
    let vol = mount(img, { mountOptions });
    try {
      vol = replayFsx(vol, cand, { clusterSize, remount: (v) => { v.unmount(); vol = mount(img, { mountOptions }); return vol; } }).vol;
      vol.unmount();
      const r = runSync("e2fsck", ["-fn", img], { okCodes: [0, 1, 2, 4, 8, 12] });
      return r.code !== 0;
    } catch {
      try { vol.unmount(); } catch { /* failed anyway */ }
      return true;
    } finally {
      fs.rmSync(img, { force: true });
    }
  };
  const small = shrinkOps(ops, fails, Number(process.env.FSX_SHRINK_BUDGET ?? 2000));
  console.log(`fsx ${c.name}: shrunk to ${small.length} ops:\n${JSON.stringify(small)}`);
  try { fails(small); } catch { /* printed below */ }
  const img = path.join(work, "shrunk.img");
  mkfs(img, { ...FIXED, ...c.mkfs });
  let vol = mount(img, { mountOptions: `data=${c.data}` });
  try { vol = replayFsx(vol, small, { clusterSize }).vol; vol.unmount(); console.log(runSync("e2fsck", ["-fn", img], { okCodes: [0, 1, 2, 4, 8, 12] }).stdout); } catch (e) { console.log(`shrunk failure: ${(e as Error).message.split("\n")[0]}`); }
}

describe.skipIf(!!missing)("fsx", () => {
  for (const c of CONFIGS) {
    it.skipIf(ONLY !== undefined && !c.name.includes(ONLY))(c.name, () => {
      const seed = SEED ?? c.seed;
      const img = path.join(work, `${c.name.replace(/[^a-z0-9]+/gi, "-")}.img`);
      mkfs(img, { ...FIXED, ...c.mkfs });
      const mountOptions = `data=${c.data}`;
      const clusterSize = c.mkfs.clusterSize ?? c.mkfs.blockSize!;
      let remounts = 0;
      let vol: Volume = mount(img, { mountOptions });
      const t0 = performance.now();
      try {
        const r = runFsx(vol, {
          seed, ops: OPS, blockSize: c.mkfs.blockSize!, clusterSize,
          trace: process.env.FSX_TRACE ? (op, i) => fs.appendFileSync(process.env.FSX_TRACE!, `#${i} ${JSON.stringify(op)}\n`) : undefined,
          remount: (v) => {
            v.unmount();
            fsck(img, `at remount ${++remounts}`);
            vol = mount(img, { mountOptions });
            return vol;
          },
        });
        vol = r.vol;
        vol.unmount();
        fsck(img, "at the end");
        // Our own read-back of the clean image, read-only.
        const ro = mount(img, { readOnly: true });
        try {
          r.model.files.forEach((f, i) => expect(Buffer.compare(ro.readFileSync(fileName(i)) as Buffer, Buffer.from(f.data.subarray(0, f.size)))).toBe(0));
        } finally {
          ro.unmount();
        }
        let kernel = "kernel view compared";
        if (loop.ok) kernelMatches(img, r.model);
        else kernel = `kernel view skipped: ${loop.reason}`;
        const counts = Object.entries(r.counts).map(([k, n]) => `${k} ${n}`).join(", ");
        console.log(`fsx ${c.name}: seed ${seed}, ${r.log.length} ops in ${((performance.now() - t0) / 1000).toFixed(1)} s, ${remounts} remounts; ${kernel}; ${counts}`);
      } catch (e) {
        try { vol.unmount(); } catch { /* the failure above is the one to report */ }
        console.log(`fsx ${c.name}: FAILED with seed ${seed} (replay: FSX_SEED=${seed} FSX_CONFIG='${c.name}')`);
        if (process.env.FSX_SHRINK && e instanceof FsxFailure) shrink(c, e.log.slice(0, e.index + 1));
        throw e;
      }
    }, 120_000);
  }
});
