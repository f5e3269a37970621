// A seeded random sequence of block-mapping operations over several files
// (written and unwritten allocations, conversions both ways, punches,
// truncates), checked against a model: e2fsck -fn and our reader after a
// remount every N ops, the kernel at the end, and the free block count back
// to its start once every file is truncated to nothing.

import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { extRemoveSpace } from "../host/fs/extents-write.js";
import { GET_BLOCKS } from "../host/fs/map-blocks.js";
import { missingTools } from "./helpers/exec.js";
import {
  checkContents, expectFsckClean, FileModel, freeBlocksOf, inodeOf, makeImage, mapRange, modelRemove, mulberry32, setSize, treeDepth, withRw,
} from "./helpers/extent-model.js";

const missing = missingTools(["mkfs.ext4", "e2fsck", "debugfs", "dumpe2fs"], "e2fsprogs");
const d = missing ? describe.skip : describe;

let work: string;
beforeAll(() => { work = fs.mkdtempSync(path.join(os.tmpdir(), "ext4wasm-extops-")); });
afterAll(() => { if (work) fs.rmSync(work, { recursive: true, force: true }); });

const OPS = 2000;
const CHECK_EVERY = 250;
const FILES = 3;

const layouts: [string, string[], string, number][] = [
  ["1k", ["-O", "^has_journal", "-b", "1024"], "64M", 0x1001],
  ["4k", ["-O", "^has_journal", "-b", "4096"], "256M", 0x4004],
  ["bigalloc-1k", ["-O", "^has_journal,bigalloc", "-b", "1024", "-C", "4096"], "128M", 0xb1c1],
  ["bigalloc-4k", ["-O", "^has_journal,bigalloc", "-b", "4096", "-C", "65536"], "512M", 0xb1c4],
];

d("random block-mapping operations against a model", () => {
  it.each(layouts)(`%s: ${OPS} ops over ${FILES} files, e2fsck and read-back every ${CHECK_EVERY}`, (name, args, size, seed) => {
    const names = Array.from({ length: FILES }, (_, i) => `f${i}`);
    const img = makeImage(work, `ops-${name}`, args, size, names);
    const free0 = freeBlocksOf(img);
    const models = names.map((n, i) => new FileModel(n, 10 + i));
    const rnd = mulberry32(seed);
    const range = name.endsWith("1k") ? 30000 : 8000;
    let bs = 0;
    let maxDepth = 0;
    const counts: Record<string, number> = {};
    for (let done = 0; done < OPS; done += CHECK_EVERY) {
      withRw(img, (f, h, vol) => {
        bs = f.sb.blockSize;
        const inodes = names.map((n) => inodeOf(vol, n));
        for (let i = 0; i < CHECK_EVERY; i++) {
          const k = Math.floor(rnd() * FILES);
          const m = models[k];
          const inode = inodes[k];
          const s = Math.floor(rnd() * range);
          const len = rnd() < 0.8 ? 1 + Math.floor(rnd() * 3) : 1 + Math.floor(rnd() * 200);
          const r = rnd();
          let op: string;
          if (r < 0.4) { op = "write"; mapRange(h, f, inode, m, s, len, GET_BLOCKS.CREATE); }
          else if (r < 0.6) { op = "prealloc"; mapRange(h, f, inode, m, s, len, GET_BLOCKS.CREATE_UNWRIT_EXT); }
          else if (r < 0.7) { op = "convert"; convertMapped(s, len, GET_BLOCKS.IO_CONVERT_EXT); }
          else if (r < 0.75) { op = "unconvert"; convertMapped(s, len, GET_BLOCKS.CONVERT_UNWRITTEN); }
          else if (r < 0.98) { op = "punch"; extRemoveSpace(h, f, inode, s, s + len - 1); modelRemove(m, s, s + len - 1); }
          else {
            op = "truncate";
            const t = rnd() < 0.2 ? 0 : Math.floor(rnd() * m.sizeBlocks);
            extRemoveSpace(h, f, inode, t, 0xfffffffe);
            modelRemove(m, t, Infinity);
            setSize(h, f, inode, m, t);
          }
          counts[op] = (counts[op] ?? 0) + 1;
          maxDepth = Math.max(maxDepth, treeDepth(inode));

          /** Conversions act on what is mapped: walk the range's mapped parts. */
          function convertMapped(a: number, n: number, flags: number): void {
            let run = -1;
            for (let b = a; b <= a + n; b++) {
              const mapped = b < a + n && m.blocks.has(b);
              if (mapped && run < 0) run = b;
              if (!mapped && run >= 0) { mapRange(h, f, inode, m, run, b - run, flags); run = -1; }
            }
          }
        }
      });
      expectFsckClean(img, `${name}: ${done + CHECK_EVERY} ops`);
      checkContents(img, bs, models, done + CHECK_EVERY >= OPS);
    }
    console.log(`${name}: ${OPS} ops ${JSON.stringify(counts)}, deepest tree ${maxDepth}`);
    withRw(img, (f, h, vol) => {
      for (const m of models) {
        const inode = inodeOf(vol, m.name);
        extRemoveSpace(h, f, inode, 0, 0xfffffffe);
        modelRemove(m, 0, Infinity);
        setSize(h, f, inode, m, 0);
        expect(treeDepth(inode)).toBe(0);
      }
    });
    expectFsckClean(img, `${name}: everything truncated`);
    expect(freeBlocksOf(img)).toBe(free0);
  });
});
