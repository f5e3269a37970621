// fsstress over the public API (tests/helpers/fsstress.ts): a seeded mix of
// namespace and data operations on images our mkfs makes, every call's result
// (or errno) predicted by a shadow model, the tree compared with the model
// every CHECK ops, e2fsck -fn after an unmount every FSCK ops (then mounted
// again), one directory grown past a one-level htree and shrunk again, and at
// the end the kernel's view of the image compared with the model. A 4k
// data=journal mount runs too (its freed data blocks once tripped the allocator).
// Not in the op table: EMLINK (65000 links), open-unlinked files, renameat2 flags.
//
// Replay or run long: FSSTRESS_SEED=<n> FSSTRESS_OPS=<n> npx vitest run tests/fsstress.test.ts

import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkfs, mount, MemoryDevice, type MkfsOptions, type Volume } from "../host/index.js";
import { compareTree, fsstressWorkload, volumeView, type Model, type TreeView } from "./helpers/fsstress.js";
import { missingTools, runSync } from "./helpers/exec.js";
import { loopMountSupport, withLoopMountSync } from "./helpers/kernel.js";
import { dirShape, fsOf, tick } from "./helpers/namei.js";

const missing = missingTools(["e2fsck"], "e2fsprogs");
const d = missing ? describe.skip : describe;
const loop = loopMountSupport();
if (!loop.ok) console.log(`fsstress: kernel comparisons skipped: ${loop.reason}`);

const SEED = process.env.FSSTRESS_SEED ? Number(process.env.FSSTRESS_SEED) : undefined;
const OPS = process.env.FSSTRESS_OPS ? Number(process.env.FSSTRESS_OPS) : undefined;

let work: string;
beforeAll(() => { work = fs.mkdtempSync(path.join(os.tmpdir(), "ext4wasm-fsstress-")); });
afterAll(() => { if (work) fs.rmSync(work, { recursive: true, force: true }); });

interface Config {
  name: string;
  mkfs: MkfsOptions;
  seed: number;
  ops: number;
  /** Entries of the big directory (long names): 1k blocks need ~300 for a two-level htree. */
  bigDir: number;
  extents: boolean;
  mountOptions?: string;
}

const CONFIGS: Config[] = [
  { name: "4k", mkfs: { size: "64M", blockSize: 4096 }, seed: 1, ops: 1200, bigDir: 300, extents: true },
  { name: "1k", mkfs: { size: "48M", blockSize: 1024 }, seed: 2, ops: 1000, bigDir: 450, extents: true },
  { name: "no-journal", mkfs: { size: "48M", blockSize: 1024, features: "^has_journal" }, seed: 3, ops: 1000, bigDir: 450, extents: true },
  { name: "inline_data", mkfs: { size: "64M", blockSize: 4096, features: "inline_data" }, seed: 4, ops: 1000, bigDir: 200, extents: true },
  { name: "ext3-like", mkfs: { size: "48M", blockSize: 1024, fsType: "ext3" }, seed: 5, ops: 1000, bigDir: 450, extents: false },
  { name: "data=journal", mkfs: { size: "64M", blockSize: 4096 }, seed: 6, ops: 800, bigDir: 100, extents: true, mountOptions: "data=journal" },
];

const CHECK = 100;
const FSCK = 500;

function fsck(img: string): void {
  const r = runSync("e2fsck", ["-fn", img], { okCodes: [0, 1, 2, 4, 8, 12] });
  if (r.code !== 0) throw new Error(`e2fsck -fn ${img} exited ${r.code}:\n${r.stdout}\n${r.stderr}`);
}

/** The kernel's view through a read-only loop mount: node:fs for the tree, getfattr for user xattrs. */
function kernelView(mnt: string): TreeView {
  const xattrs = new Map<string, Map<string, Buffer>>();
  const out = runSync("getfattr", ["-R", "-h", "-d", "-m", "^user\\.", "-e", "hex", "--absolute-names", mnt], { okCodes: [0, 1] }).stdout;
  let cur: Map<string, Buffer> | undefined;
  for (const line of out.split("\n")) {
    const f = /^# file: (.*)$/.exec(line);
    if (f) { cur = new Map(); xattrs.set(Buffer.from(f[1], "latin1").toString().slice(mnt.length) || "/", cur); continue; }
    const kv = /^(user\.[^=]*)(?:=(.*))?$/.exec(line);
    if (kv && cur) cur.set(kv[1], kv[2] && kv[2].startsWith("0x") ? Buffer.from(kv[2].slice(2), "hex") : Buffer.alloc(0));
  }
  const at = (p: string) => path.join(mnt, p);
  return {
    readdir: (p) => fs.readdirSync(at(p)),
    lstat: (p) => fs.lstatSync(at(p)),
    readFile: (p) => fs.readFileSync(at(p)),
    readlink: (p) => fs.readlinkSync(at(p), { encoding: "buffer" }),
    xattrs: (p) => xattrs.get(p) ?? new Map(),
  };
}

function expectSame(m: Model, v: TreeView, what: string, tail: string): void {
  const diffs = compareTree(m, v);
  if (diffs.length) throw new Error(`${what}: the tree differs from the model:\n${diffs.join("\n")}\n--- op log tail\n${tail}`);
}

d("fsstress", () => {
  it.each(CONFIGS)("$name: every op as the model predicts, e2fsck clean, the kernel sees the model", async (c) => {
    await tick(); // let the worker answer vitest between long synchronous runs
    const seed = SEED ?? c.seed;
    const ops = OPS ?? c.ops;
    const img = path.join(work, `${c.name}.img`);
    const size = 64 << 20;
    const bytes = new Uint8Array(Number.parseInt(String(c.mkfs.size)) << 20 || size);
    mkfs(new MemoryDevice(bytes), { ...c.mkfs, size: undefined, uuid: "1f0e7a4c-5b8d-4e2f-9a61-3c7d2b9e0f15", hashSeed: "7c2d1e4f-0a9b-4c8d-b1e2-3f4a5b6c7d8e", time: 1_700_000_000 });
    let vol: Volume = mount(bytes, { mountOptions: c.mountOptions });
    let maxLevels = 0;
    let fscks = 0;
    const started = Date.now();
    try {
      const run = fsstressWorkload(vol, {
        seed, ops, blockSize: c.mkfs.blockSize!, extents: c.extents, checkEvery: CHECK, bigDirEntries: c.bigDir,
        checkpoint: (v, r) => {
          const big = r.model.root.entries.get("big");
          if (big) {
            const ino = Number(v.lstatSync("/big").ino);
            const shape = dirShape(fsOf(v), ino);
            maxLevels = Math.max(maxLevels, shape.indexed ? shape.levels : 0);
          }
          expectSame(r.model, volumeView(v), `seed ${seed} after op #${r.log.length}`, r.tail());
          if (r.log.length < (fscks + 1) * FSCK) return;
          fscks++;
          v.unmount();
          fs.writeFileSync(img, bytes);
          try { fsck(img); } catch (e) { throw new Error(`seed ${seed} after op #${r.log.length}: ${(e as Error).message}\n--- op log tail\n${r.tail()}`); }
          return mount(bytes, { mountOptions: c.mountOptions });
        },
      });
      vol = run.vol;
      expectSame(run.model, volumeView(vol), `seed ${seed} at the end`, run.tail());
      vol.unmount();
      vol = undefined as unknown as Volume;
      fs.writeFileSync(img, bytes);
      fsck(img);
      // Our own read-back after a clean remount.
      const again = mount(img, { readOnly: true });
      try { expectSame(run.model, volumeView(again), `seed ${seed} after remount`, run.tail()); } finally { again.unmount(); }
      if (loop.ok) withLoopMountSync(img, (mnt) => expectSame(run.model, kernelView(mnt), `seed ${seed}, the kernel's view`, run.tail()), { readOnly: true });
      console.log(`fsstress ${c.name}: seed ${seed}, ${run.log.length} ops, ${fscks + 1} e2fsck runs, big directory's htree levels ${maxLevels}, ${Date.now() - started} ms`);
    } finally {
      if (vol) try { vol.unmount(); } catch { /* already failed */ }
    }
    // 1k blocks with long names: the big directory reached a two-level htree.
    if (c.mkfs.blockSize === 1024 && !OPS) expect(maxLevels).toBeGreaterThanOrEqual(2);
  }, OPS ? 1_800_000 : 120_000);
});
