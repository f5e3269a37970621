// Directories that grow: ext4_append for linear directories, make_indexed_dir
// when a one-block directory fills, leaf splits, index splits and new levels
// (two, and three with large_dir), ENOSPC when the index is full, and a
// seeded random sequence of adds and removes against a model. Every
// scenario ends unmounted with e2fsck -fn clean and the same names for us
// and the kernel.

import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { addEntry } from "../host/fs/namei.js";
import { FT } from "../host/format/dirent.js";
import { missingTools } from "./helpers/exec.js";
import {
  bytes, checkImage, dirShape, expectLive, fsck, link, linkedTree, makeImage, ourNames, rng, tick, unlink, withHandle, withHandleAsync,
} from "./helpers/namei.js";

const missing = missingTools(["mkfs.ext4", "e2fsck", "debugfs"], "e2fsprogs");
if (missing) console.log(`namei-grow: skipped: ${missing}`);
const d = missing ? describe.skip : describe;

let work: string;
beforeAll(() => {
  if (!missing) work = fs.mkdtempSync(path.join(os.tmpdir(), "ext4wasm-namei-grow-"));
});
afterAll(() => {
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

interface Run { model: Map<string, number>; shape: { indexed: boolean; levels: number; blocks: number } }

/**
 * Adds `n` names (from `name(i)`) to /d, in sessions of `every` adds, each
 * ending unmounted and e2fsck-clean. Stops early at the first error `stopOn`
 * names (returned), else throws it.
 */
async function grow(img: string, n: number, every: number, name: (i: number) => string, stopOn?: string): Promise<Run & { stopped?: { at: number; message: string } }> {
  let model = new Map<string, number>();
  let shape = { indexed: false, levels: 0, blocks: 0 };
  let stopped: { at: number; message: string } | undefined;
  for (let start = 0; start < n && !stopped; start += every) {
    await withHandleAsync(img, async (f, h, vol) => {
      const dirIno = vol.statSync("/d").ino;
      const pool = Array.from({ length: 16 }, (_, i) => vol.statSync(`/pool/p${i}`).ino);
      if (start === 0) model = ourNames(f, dirIno);
      for (let i = start; i < Math.min(n, start + every); i++) {
        if (i % 500 === 0) await tick();
        const k = name(i);
        try {
          link(f, h, dirIno, bytes(k), pool[i % 16]);
        } catch (e) {
          if (stopOn && (e as { code?: string }).code === stopOn) { stopped = { at: i, message: (e as Error).message }; break; }
          throw e;
        }
        model.set(k, pool[i % 16]);
      }
      shape = dirShape(f, dirIno);
    });
    fsck(img);
  }
  return { model, shape, stopped };
}

const short = (i: number) => `f${i.toString(36)}`;

d("a one-block directory that fills", () => {
  it.each([
    ["4k-halfmd4-csum", 4096, "", "half_md4", false],
    ["4k-tea-nocsum", 4096, "^metadata_csum", "tea", false],
    ["1k-halfmd4-csum-unsigned", 1024, "", "half_md4", true],
    ["1k-tea-nocsum-unsigned", 1024, "^metadata_csum", "tea", true],
  ] as const)("becomes an htree and splits its leaves (%s)", async (name, bs, features, hash, unsigned) => {
    const img = makeImage(work, { name: `mkidx-${name}`, blockSize: bs, features, hash, unsigned, tree: linkedTree(10) });
    withHandle(img, (f, _h, vol) => {
      expect(dirShape(f, vol.statSync("/d").ino)).toEqual({ indexed: false, levels: 0, blocks: 1 });
      expect(f.sb.flags & 3).toBe(unsigned ? 2 : 1);
    });
    // High-bit names: the signed and unsigned variants hash them apart.
    const r = await grow(img, 3000, 1000, (i) => `${short(i)}\u00e9${String.fromCharCode(0x80 + (i % 0x7f))}`);
    expect(r.shape.indexed).toBe(true);
    expect(r.shape.levels).toBe(1);
    console.log(`namei-grow: ${name}: ${r.model.size} names, ${r.shape.blocks} blocks, depth ${r.shape.levels}`);
    checkImage(img, "/d", r.model);
  });

  it("64 KiB blocks: the block filled, indexed and split", async () => {
    const img = makeImage(work, { name: "mkidx-64k", blockSize: 65536, sizeMiB: 256, tree: linkedTree(10) });
    const r = await grow(img, 5000, 2500, (i) => `sixty-four-k-${i}`);
    expect(r.shape.indexed).toBe(true);
    console.log(`namei-grow: 64k: ${r.model.size} names, ${r.shape.blocks} blocks, depth ${r.shape.levels}`);
    checkImage(img, "/d", r.model, [], "page-size blocks");
  });

  it("a block-mapped directory (no extents) grows past its direct blocks and is indexed", async () => {
    const img = makeImage(work, { name: "mkidx-blockmap", blockSize: 1024, features: "^extent,^64bit", tree: linkedTree(10) });
    const r = await grow(img, 3000, 1500, short);
    expect(r.shape.indexed).toBe(true);
    expect(r.shape.blocks).toBeGreaterThan(12 + 1);
    withHandle(img, (f, _h, vol) => expect(f.inode(vol.statSync("/d").ino).flags & 0x80000).toBe(0));
    checkImage(img, "/d", r.model);
  });

  it("stays linear and grows block by block without dir_index", async () => {
    const img = makeImage(work, { name: "grow-linear", blockSize: 1024, features: "^dir_index", tree: linkedTree(10) });
    const r = await grow(img, 2000, 1000, short);
    expect(r.shape.indexed).toBe(false);
    expect(r.shape.blocks).toBeGreaterThan(20);
    checkImage(img, "/d", r.model);
  });

  it("a multi-block linear directory stays linear (only a one-block one is indexed)", async () => {
    const img = makeImage(work, { name: "grow-multilinear", blockSize: 1024, tree: linkedTree(200) });
    const before = withHandle(img, (f, _h, vol) => dirShape(f, vol.statSync("/d").ino));
    expect(before.indexed).toBe(false);
    expect(before.blocks).toBeGreaterThan(1);
    const r = await grow(img, 1000, 1000, (i) => `g${i}`);
    expect(r.shape.indexed).toBe(false);
    expect(r.shape.blocks).toBeGreaterThan(before.blocks);
    checkImage(img, "/d", r.model);
  });
});

d("index splits and levels", () => {
  it("two levels on 1k blocks, index nodes split, checksums kept (metadata_csum)", async () => {
    const img = makeImage(work, { name: "two-levels", blockSize: 1024, tree: linkedTree(10) });
    const r = await grow(img, 12000, 4000, (i) => `name-${i}-${"x".repeat(i % 20)}`);
    expect(r.shape.levels).toBe(2);
    console.log(`namei-grow: two-levels: ${r.model.size} names, ${r.shape.blocks} blocks, depth ${r.shape.levels}`);
    checkImage(img, "/d", r.model);
  });

  it("ENOSPC when both levels are full without large_dir; three levels with it", async () => {
    const long = (i: number) => `${i.toString(36)}-${"L".repeat(200 + (i % 50))}`;
    const full = makeImage(work, { name: "index-full", blockSize: 1024, sizeMiB: 128, tree: linkedTree(10) });
    const a = await grow(full, 60000, 10000, long, "ENOSPC");
    expect(a.stopped, "the index never filled").toBeDefined();
    expect(a.stopped!.message).toMatch(/index full/);
    expect(a.shape.levels).toBe(2);
    console.log(`namei-grow: index full at ${a.model.size} names of 200-250 bytes, ${a.shape.blocks} blocks, 1k, no large_dir`);
    checkImage(full, "/d", a.model);

    const big = makeImage(work, { name: "three-levels", blockSize: 1024, sizeMiB: 128, features: "large_dir", tree: linkedTree(10) });
    const b = await grow(big, a.model.size + 2000, 10000, long);
    expect(b.shape.levels).toBe(3);
    console.log(`namei-grow: three levels: ${b.model.size} names, ${b.shape.blocks} blocks, 1k, large_dir`);
    checkImage(big, "/d", b.model);
  }, 600_000);
});

d("a seeded random sequence of adds and removes", () => {
  // The 1k one starts from one block and its long names take it to two levels; the 4k one starts from e2fsck's index.
  it.each([
    ["1k-csum, from one block", 1024, "", 7, 100, false, 2],
    ["4k-nocsum-tea, from e2fsck -D", 4096, "^metadata_csum", 11, 40, true, 1],
  ] as const)("%s: thousands of operations against a model, e2fsck every 1000", async (name, bs, features, seed, pad, index, depth) => {
    const img = makeImage(work, { name: `random-${bs}`, blockSize: bs, features, hash: features ? "tea" : "half_md4", index, tree: linkedTree(index ? 3000 : 20) });
    const r = rng(seed);
    let model = new Map<string, number>();
    const gone = new Set<string>();
    let maxNames = 0;
    let maxDepth = 0;
    let shape = { indexed: false, levels: 0, blocks: 0 };
    const OPS = 8000;
    for (let start = 0; start < OPS; start += 1000) {
      await tick();
      withHandle(img, (f, h, vol) => {
        const dirIno = vol.statSync("/d").ino;
        const pool = Array.from({ length: 16 }, (_, i) => vol.statSync(`/pool/p${i}`).ino);
        if (start === 0) model = ourNames(f, dirIno);
        for (let op = start; op < start + 1000; op++) {
          // Grow for the first half, shrink for the second.
          const pAdd = op < OPS / 2 ? 0.7 : 0.3;
          if (model.size === 0 || r() < pAdd) {
            const k = `${Math.floor(r() * 1e6).toString(36)}${"_".repeat(Math.floor(r() * pad))}`;
            const target = pool[Math.floor(r() * 16)];
            if (model.has(k)) {
              expect(() => addEntry(h, f, f.inode(dirIno), bytes(k), target, FT.REG)).toThrow(expect.objectContaining({ code: "EEXIST" }));
              continue;
            }
            link(f, h, dirIno, bytes(k), target);
            model.set(k, target);
            gone.delete(k);
          } else {
            const names = [...model.keys()];
            const k = names[Math.floor(r() * names.length)];
            expect(unlink(f, h, dirIno, bytes(k))).toBe(model.get(k));
            model.delete(k);
            gone.add(k);
          }
          maxNames = Math.max(maxNames, model.size);
        }
        expectLive(f, dirIno, model, gone);
        shape = dirShape(f, dirIno);
        maxDepth = Math.max(maxDepth, shape.levels);
      });
      fsck(img);
    }
    console.log(`namei-grow: random ${name}: ${OPS} ops, at most ${maxNames} names, depth up to ${maxDepth}, ends with ${model.size} names in ${shape.blocks} blocks`);
    expect(shape.indexed).toBe(true);
    expect(maxDepth).toBe(depth);
    checkImage(img, "/d", model, [...gone]);
  });
});
