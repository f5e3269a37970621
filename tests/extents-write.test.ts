// Extent tree modification and the write-side map_blocks, judged by e2fsck
// -fn, our reader after a remount and the kernel: random-order allocations
// that grow the tree to depth 2 and more, unwritten extents and their
// conversion, splits in the middle of extents, punches and truncates down to
// an empty tree with the free counts back where they started.

import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { extRemoveSpace } from "../host/fs/extents-write.js";
import { findExtent, pathNode, releasePath } from "../host/fs/extents.js";
import { ext4MapBlocks, ext4RemoveSpace, GET_BLOCKS, MAP } from "../host/fs/map-blocks.js";
import { missingTools, runSync } from "./helpers/exec.js";
import {
  checkContents, expectFsckClean, FileModel, freeBlocksOf, inodeOf, makeImage, mapRange, modelRemove, mulberry32, setSize, treeDepth, withRw,
} from "./helpers/extent-model.js";

const missing = missingTools(["mkfs.ext4", "e2fsck", "debugfs", "dumpe2fs"], "e2fsprogs");
const d = missing ? describe.skip : describe;

let work: string;
beforeAll(() => { work = fs.mkdtempSync(path.join(os.tmpdir(), "ext4wasm-extw-")); });
afterAll(() => { if (work) fs.rmSync(work, { recursive: true, force: true }); });

const layouts: [string, string[], string][] = [
  ["4k", ["-O", "^has_journal", "-b", "4096"], "128M"],
  ["1k", ["-O", "^has_journal", "-b", "1024"], "64M"],
  ["bigalloc", ["-O", "^has_journal,bigalloc", "-b", "1024", "-C", "4096"], "128M"],
];

function shuffled<T>(xs: T[], rnd: () => number): T[] {
  const a = xs.slice();
  for (let i = a.length - 1; i > 0; i--) { const j = Math.floor(rnd() * (i + 1)); [a[i], a[j]] = [a[j], a[i]]; }
  return a;
}

d("extent trees written", () => {
  it.each(layouts)("%s: random-order allocations grow the tree past depth 2; punches and truncates take it back to an empty root", (name, args, size) => {
    const img = makeImage(work, `grow-${name}`, args, size, ["f"]);
    const free0 = freeBlocksOf(img);
    const m = new FileModel("f", 1);
    const rnd = mulberry32(0x5eed + name.length);
    let maxDepth = 0;
    let bs = 0;
    let per = 0;
    let slots = 0;
    withRw(img, (f, h, vol) => {
      bs = f.sb.blockSize;
      per = Math.floor((bs - 12) / 12);
      // Every fourth block, in random order, singles and short runs: no two extents can merge,
      // so the tree holds one extent per allocation: enough for more than a full level of leaves.
      slots = 8 * per + 200;
      const inode = inodeOf(vol, "f");
      for (const s of shuffled(Array.from({ length: slots }, (_, i) => i * 4), rnd)) {
        mapRange(h, f, inode, m, s, rnd() < 0.7 ? 1 : 2 + Math.floor(rnd() * 2), GET_BLOCKS.CREATE);
        maxDepth = Math.max(maxDepth, treeDepth(inode));
      }
    });
    console.log(`${name}: ${slots} allocations, tree depth ${maxDepth}`);
    expect(maxDepth).toBeGreaterThanOrEqual(2);
    expectFsckClean(img, `${name} random allocations`);
    checkContents(img, bs, [m], true);

    // Punches: inside runs, across many leaves, at the front.
    withRw(img, (f, h, vol) => {
      const inode = inodeOf(vol, "f");
      for (const [a, b] of [[1, 1], [9, 9], [400, 1300], [4 * per, 4 * per + 3], [2001, 2002], [0, 0]]) {
        extRemoveSpace(h, f, inode, a, b);
        modelRemove(m, a, b);
      }
    });
    expectFsckClean(img, `${name} punches`);
    checkContents(img, bs, [m], false);

    // Truncates to various sizes, down to nothing: the root is an empty leaf again.
    for (const t of [slots * 4 - 7, slots * 3, 1501, 37, 0]) {
      let depth = -1;
      withRw(img, (f, h, vol) => {
        const inode = inodeOf(vol, "f");
        extRemoveSpace(h, f, inode, t, 0xfffffffe);
        modelRemove(m, t, Infinity);
        setSize(h, f, inode, m, t);
        depth = treeDepth(inode);
      });
      expectFsckClean(img, `${name} truncate to ${t} blocks`);
      checkContents(img, bs, [m], t === 37);
      if (t === 0) expect(depth).toBe(0);
    }
    expect(freeBlocksOf(img)).toBe(free0);
  });
});

d("unwritten extents", () => {
  it.each(layouts)("%s: unwritten allocations read as zeros until converted; conversions split extents in the middle and merge them back; written ranges turn unwritten", (name, args, size) => {
    const img = makeImage(work, `unwrit-${name}`, args, size, ["u"]);
    const free0 = freeBlocksOf(img);
    const m = new FileModel("u", 2);
    const rnd = mulberry32(0xabc + name.length);
    let bs = 0;
    const spans: [number, number][] = [[0, 300], [1000, 5000], [20000, 700]];
    let firstRun = 0;
    withRw(img, (f, h, vol) => {
      bs = f.sb.blockSize;
      const inode = inodeOf(vol, "u");
      for (const [a, n] of spans) {
        const runs = mapRange(h, f, inode, m, a, n, GET_BLOCKS.CREATE_UNWRIT_EXT);
        if (a === 0) firstRun = runs[0].len;
        for (const r of runs) expect(r.flags & (MAP.NEW | MAP.UNWRITTEN | MAP.MAPPED)).toBe(MAP.NEW | MAP.UNWRITTEN | MAP.MAPPED);
      }
      // A lookup of an unwritten block says so, and changes nothing.
      const seq = ext4MapBlocks(undefined, f, inode, { lblk: 5, len: 10 }, 0).seq;
      const look = ext4MapBlocks(undefined, f, inode, { lblk: 5, len: 10 }, 0);
      expect(look.flags).toBe(MAP.UNWRITTEN);
      expect(look.seq).toBe(seq);
    });
    expectFsckClean(img, `${name} unwritten allocations`);
    checkContents(img, bs, [m], true);

    withRw(img, (f, h, vol) => {
      const inode = inodeOf(vol, "u");
      let seq = ext4MapBlocks(undefined, f, inode, { lblk: 0, len: 1 }, 0).seq;
      // Conversions in random order, in the middle of extents: each splits one into up to three.
      for (let i = 0; i < 150; i++) {
        const [a, n] = spans[Math.floor(rnd() * spans.length)];
        const s = a + Math.floor(rnd() * n);
        const len = 1 + Math.floor(rnd() * Math.min(40, a + n - s));
        let unwritten = false;
        for (let k = s; k < s + len; k++) if (m.blocks.get(k)?.unwritten) unwritten = true;
        mapRange(h, f, inode, m, s, len, GET_BLOCKS.IO_CONVERT_EXT);
        const now = ext4MapBlocks(undefined, f, inode, { lblk: 0, len: 1 }, 0).seq;
        if (unwritten) expect(now, "the mapping sequence moves with every change").not.toBe(seq);
        else expect(now, "a conversion of written blocks changes nothing").toBe(seq);
        seq = now;
      }
      // A plain write into unwritten space: written at once, and NEW (the caller zeroes what it does not write).
      const r = mapRange(h, f, inode, m, 1500, 10, GET_BLOCKS.CREATE);
      expect(r[0].flags & MAP.NEW).toBe(MAP.NEW);
      // Written ranges back to unwritten (zero range), across converted and unconverted parts.
      mapRange(h, f, inode, m, 1400, 300, GET_BLOCKS.CONVERT_UNWRITTEN);
      // Convert everything in the first span: the pieces of its first run merge back into one extent.
      mapRange(h, f, inode, m, 0, 300, GET_BLOCKS.IO_CONVERT_EXT);
      const whole = ext4MapBlocks(undefined, f, inode, { lblk: 0, len: 300 }, 0);
      expect(whole.flags).toBe(MAP.MAPPED);
      expect(whole.len).toBeGreaterThanOrEqual(firstRun);
    });
    expectFsckClean(img, `${name} conversions`);
    checkContents(img, bs, [m], true);

    withRw(img, (f, h, vol) => {
      const inode = inodeOf(vol, "u");
      extRemoveSpace(h, f, inode, 0, 0xfffffffe);
      modelRemove(m, 0, Infinity);
      setSize(h, f, inode, m, 0);
      expect(treeDepth(inode)).toBe(0);
    });
    expectFsckClean(img, `${name} truncate to 0`);
    expect(freeBlocksOf(img)).toBe(free0);
  });

  it("1k: long allocations are single runs as far as the allocator gives them, merged up to 32768 written / 32767 unwritten blocks per extent", () => {
    const img = makeImage(work, "long-1k", ["-O", "^has_journal", "-b", "1024"], "256M", ["w", "u"]);
    const w = new FileModel("w", 3);
    const u = new FileModel("u", 4);
    let bs = 0;
    withRw(img, (f, h, vol) => {
      bs = f.sb.blockSize;
      const wi = inodeOf(vol, "w");
      const ui = inodeOf(vol, "u");
      const wr = mapRange(h, f, wi, w, 0, 70000, GET_BLOCKS.CREATE);
      const ur = mapRange(h, f, ui, u, 0, 70000, GET_BLOCKS.CREATE_UNWRIT_EXT);
      console.log(`1k long: written in ${wr.length} runs, unwritten in ${ur.length} runs`);
      for (const r of wr) expect(r.len).toBeLessThanOrEqual(32768);
      for (const r of ur) expect(r.len).toBeLessThanOrEqual(32767);
      // Each run is as long as the allocator could make it: far more than one block.
      expect(wr.length).toBeLessThan(70000 / 1000);
    });
    expectFsckClean(img, "long allocations");
    const out = runSync("debugfs", ["-R", "ex w", img]).stdout + runSync("debugfs", ["-R", "ex u", img]).stdout;
    const lens = [...out.matchAll(/^\s*\d+\/\s*\d+\s+\d+\/\s*\d+\s+\d+\s*-\s*\d+\s+\d+\s*-\s*\d+\s+(\d+)/gm)].map((x) => Number(x[1]));
    expect(lens.length).toBeGreaterThan(0);
    expect(Math.max(...lens)).toBeGreaterThan(8192);
    checkContents(img, bs, [w, u], true);
  });
});

d("a deep tree", () => {
  it("1k: appending 28 300 extents grows the tree to depth 3 (full leaves, index splits at two levels); random punches; truncated to nothing it is an empty root", () => {
    const img = makeImage(work, "deep-1k", ["-O", "^has_journal", "-b", "1024"], "96M", ["d"]);
    const free0 = freeBlocksOf(img);
    const m = new FileModel("d", 5);
    const n = 4 * 84 * 84 + 76;
    let depth = 0;
    let bs = 0;
    withRw(img, (f, h, vol) => {
      bs = f.sb.blockSize;
      const inode = inodeOf(vol, "d");
      // Every other block: nothing merges, and each new extent goes at the end of the last leaf.
      for (let i = 0; i < n; i++) mapRange(h, f, inode, m, 2 * i, 1, GET_BLOCKS.CREATE);
      depth = treeDepth(inode);
    });
    console.log(`deep: ${n} extents, depth ${depth}`);
    expect(depth).toBe(3);
    expectFsckClean(img, "deep tree");
    checkContents(img, bs, [m], true);
    const rnd = mulberry32(77);
    withRw(img, (f, h, vol) => {
      const inode = inodeOf(vol, "d");
      for (let i = 0; i < 60; i++) {
        const s = Math.floor(rnd() * 2 * n);
        const e = s + Math.floor(rnd() * (i % 10 === 0 ? 3000 : 20));
        extRemoveSpace(h, f, inode, s, e);
        modelRemove(m, s, e);
      }
    });
    expectFsckClean(img, "deep tree punched");
    checkContents(img, bs, [m], false);
    withRw(img, (f, h, vol) => {
      const inode = inodeOf(vol, "d");
      extRemoveSpace(h, f, inode, 0, 0xfffffffe);
      modelRemove(m, 0, Infinity);
      setSize(h, f, inode, m, 0);
      depth = treeDepth(inode);
    });
    expect(depth).toBe(0);
    expectFsckClean(img, "deep tree truncated");
    checkContents(img, bs, [m], true);
    expect(freeBlocksOf(img)).toBe(free0);
  });
});

d("running out of space", () => {
  it.each([["1k", ["-O", "^has_journal", "-b", "1024"], "8M"], ["bigalloc", ["-O", "^has_journal,bigalloc", "-b", "1024", "-C", "4096"], "16M"]] as [string, string[], string][])(
    "%s: allocating until ENOSPC (data and tree blocks alike) fails only with ENOSPC and leaves a clean image; truncated, every block comes back",
    (name, args, size) => {
      const img = makeImage(work, `enospc-${name}`, args, size, ["a", "b"]);
      const free0 = freeBlocksOf(img);
      const models = [new FileModel("a", 30), new FileModel("b", 31)];
      let bs = 0;
      let err: unknown;
      let done = 0;
      withRw(img, (f, h, vol) => {
        bs = f.sb.blockSize;
        const inodes = models.map((m) => inodeOf(vol, m.name));
        try {
          // Two files taking turns, every other block: nothing merges, so the trees keep growing.
          for (let i = 0; ; i++) {
            const k = i & 1;
            mapRange(h, f, inodes[k], models[k], 2 * (i >> 1) * 4, 1, GET_BLOCKS.CREATE);
            done++;
          }
        } catch (e) {
          err = e;
        }
      });
      expect((err as { code?: string }).code, String(err)).toBe("ENOSPC");
      console.log(`${name}: ENOSPC after ${done} allocations`);
      // Now the failure inside the tree: free one block, fill b's last leaf, free one more, and
      // allocate at b's end: the data block is found, the leaf split's block is not. The data
      // block goes back and the tree is as it was.
      withRw(img, (f, h, vol) => {
        const [ai, bi] = models.map((m) => inodeOf(vol, m.name));
        const lastLeafFull = () => {
          const p = findExtent(f, bi, 0xfffffffe);
          try {
            const node = pathNode(bi, p[p.length - 1]);
            return (node[2] | (node[3] << 8)) === (node[4] | (node[5] << 8));
          } finally {
            releasePath(f, p);
          }
        };
        const aBlocks = [...models[0].blocks.keys()].sort((x, y) => x - y);
        let next = Math.max(...models[1].blocks.keys()) + 8;
        const punchOne = () => { const x = aBlocks.shift()!; ext4RemoveSpace(h, f, ai, x, x); modelRemove(models[0], x, x); };
        for (let guard = 0; guard < 400 && !lastLeafFull(); guard++) {
          punchOne();
          mapRange(h, f, bi, models[1], next, 1, GET_BLOCKS.CREATE);
          next += 8;
        }
        expect(lastLeafFull()).toBe(true);
        punchOne();
        const free = f.sb.freeBlocksCount;
        const blocks = bi.blocks512;
        let e2: unknown;
        try { mapRange(h, f, bi, models[1], next, 1, GET_BLOCKS.CREATE); } catch (e) { e2 = e; }
        expect((e2 as { code?: string }).code, String(e2)).toBe("ENOSPC");
        expect(f.sb.freeBlocksCount).toBe(free);
        expect(bi.blocks512).toBe(blocks);
      });
      expectFsckClean(img, `${name} ENOSPC in a leaf split`);
      expectFsckClean(img, `${name} ENOSPC`);
      checkContents(img, bs, models, false);
      withRw(img, (f, h, vol) => {
        for (const m of models) {
          const inode = inodeOf(vol, m.name);
          ext4RemoveSpace(h, f, inode, 0, 0xfffffffe);
          modelRemove(m, 0, Infinity);
          setSize(h, f, inode, m, 0);
        }
      });
      expectFsckClean(img, `${name} ENOSPC then truncated`);
      expect(freeBlocksOf(img)).toBe(free0);
    },
  );
});
