// The extent status tree stays a true copy of the disk while the block map
// changes range by range (no whole drop per change): after every one of a
// seeded random sequence of allocations, conversions, punches and truncates,
// every extent the tree holds agrees block for block with a fresh on-disk
// lookup, the read path's answers agree too, seq moved whenever the on-disk
// mapping did, and delayed extents the write path put in are all still there.
// Extent files (4k, 1k, bigalloc) and a block-mapped ext3 file.

import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ES } from "../host/fs/extents-status.js";
import { extentMapBlocks } from "../host/fs/extents.js";
import { indirectMapBlocks } from "../host/fs/indirect.js";
import { Ext4Inode } from "../host/fs/inode.js";
import { ext4RemoveSpace, GET_BLOCKS } from "../host/fs/map-blocks.js";
import { MapKind } from "../host/fs/mapping.js";
import type { Ext4 } from "../host/fs/super.js";
import { INODE_FLAGS, type Inode } from "../host/format/inode.js";
import { missingTools } from "./helpers/exec.js";
import { expectFsckClean, FileModel, inodeOf, makeImage, mapRange, modelRemove, mulberry32, setSize, withRw } from "./helpers/extent-model.js";

const missing = missingTools(["mkfs.ext4", "e2fsck", "debugfs"], "e2fsprogs");
if (missing) console.log(`extents-status-sync: skipped: ${missing}`);
const d = missing ? describe.skip : describe;

let work: string;
beforeAll(() => { work = fs.mkdtempSync(path.join(os.tmpdir(), "ext4wasm-essync-")); });
afterAll(() => { if (work) fs.rmSync(work, { recursive: true, force: true }); });

const OPS = 600;
const FILES = 2;

/** What the disk says from `lblk` on, read fresh: a plain copy of the inode has no status tree and no cached leaf. */
function fresh(f: Ext4, inode: Inode, lblk: number, maxLen: number): { len: number; pblk: number; kind: MapKind } {
  const plain: Inode = { ...inode };
  return inode.flags & INODE_FLAGS.EXTENTS ? extentMapBlocks(f, plain, lblk, maxLen) : indirectMapBlocks(f, plain, lblk, maxLen);
}

/** The on-disk mapping of [0, end) as runs, for comparing before and after an operation. */
function diskRuns(f: Ext4, inode: Inode, end: number): string {
  const out: string[] = [];
  for (let b = 0; b < end; ) {
    const m = fresh(f, inode, b, end - b);
    if (m.kind !== MapKind.Hole) out.push(`${b}+${m.len}@${m.pblk}${m.kind === MapKind.Unwritten ? "u" : ""}`);
    b += Math.max(1, m.len);
  }
  return out.join(" ");
}

const KIND: Record<number, MapKind> = { [ES.WRITTEN]: MapKind.Mapped, [ES.UNWRITTEN]: MapKind.Unwritten, [ES.HOLE]: MapKind.Hole };

/** Every non-delayed extent of the tree agrees with the disk over its whole length. */
function expectTreeMatchesDisk(f: Ext4, inode: Ext4Inode, when: string): void {
  for (const e of inode.es.extents()) {
    if (e.status === ES.DELAYED) continue;
    for (let b = e.lblk; b < e.lblk + e.len; ) {
      const m = fresh(f, inode, b, e.lblk + e.len - b);
      const n = Math.max(1, Math.min(m.len, e.lblk + e.len - b));
      const want = { kind: KIND[e.status], pblk: e.status === ES.HOLE ? 0 : e.pblk + (b - e.lblk) };
      if (m.kind !== want.kind || m.pblk !== want.pblk) {
        throw new Error(`${when}: status tree says ${e.lblk}+${e.len} status ${e.status} pblk ${e.pblk}; at ${b} the disk says kind ${m.kind} pblk ${m.pblk}`);
      }
      b += n;
    }
  }
}

const layouts: [string, string[], string, number, number][] = [
  ["4k", ["-O", "^has_journal", "-b", "4096"], "128M", 0x5e4, 6000],
  ["1k", ["-O", "^has_journal", "-b", "1024"], "64M", 0x5e1, 20000],
  ["bigalloc-4k", ["-O", "^has_journal,bigalloc", "-b", "4096", "-C", "16384"], "256M", 0x5eb, 6000],
  ["ext3-1k", ["-t", "ext3", "-O", "^has_journal", "-b", "1024"], "96M", 0x5e3, 70000],
];

d("extent status tree kept range by range", () => {
  it.each(layouts)(`%s: after each of ${OPS} random changes the tree agrees with the disk, seq moved, delayed extents kept`, (name, args, size, seed, range) => {
    const names = Array.from({ length: FILES }, (_, i) => `f${i}`);
    const img = makeImage(work, `sync-${name}`, args, size, names);
    const models = names.map((n, i) => new FileModel(n, 30 + i));
    const rnd = mulberry32(seed);
    const extents = !name.startsWith("ext3");
    // Delayed extents live past `range`, where no allocation goes; punches and truncates do reach them.
    const delayedAt = range + 200;
    const counts: Record<string, number> = {};
    withRw(img, (f, h, vol) => {
      const inodes = names.map((n) => inodeOf(vol, n) as Ext4Inode);
      const held = inodes.map((i) => f.iget(i.ino));
      try {
        const delayed = held.map((inode) => {
          const list: [number, number][] = [];
          for (let k = 0; k < 5; k++) {
            const at = delayedAt + k * 40 + Math.floor(rnd() * 20);
            const len = 1 + Math.floor(rnd() * 10);
            inode.es.insert(at, len, 0, ES.DELAYED);
            list.push([at, len]);
          }
          return list;
        });
        for (let i = 0; i < OPS; i++) {
          const k = Math.floor(rnd() * FILES);
          const inode = held[k];
          const m = models[k];
          const s = Math.floor(rnd() * range);
          const len = rnd() < 0.8 ? 1 + Math.floor(rnd() * 4) : 1 + Math.floor(rnd() * 150);
          const before = diskRuns(f, inode, delayedAt + 400);
          const seq = inode.es.seq;
          const r = rnd();
          let op: string;
          if (r < 0.45) { op = "write"; mapRange(h, f, inode, m, s, len, GET_BLOCKS.CREATE); }
          else if (extents && r < 0.6) { op = "prealloc"; mapRange(h, f, inode, m, s, len, GET_BLOCKS.CREATE_UNWRIT_EXT); }
          else if (extents && r < 0.7) { op = "convert"; convertMapped(s, len, GET_BLOCKS.IO_CONVERT_EXT); }
          else if (extents && r < 0.75) { op = "unconvert"; convertMapped(s, len, GET_BLOCKS.CONVERT_UNWRITTEN); }
          else if (r < 0.97) { op = "punch"; ext4RemoveSpace(h, f, inode, s, s + len - 1); modelRemove(m, s, s + len - 1); }
          else {
            op = "truncate";
            const t = Math.floor(rnd() * m.sizeBlocks);
            ext4RemoveSpace(h, f, inode, t, 0xfffffffe);
            modelRemove(m, t, Infinity);
            setSize(h, f, inode, m, t);
          }
          counts[op] = (counts[op] ?? 0) + 1;
          // The read path's view: random blocks mapped through the tree (which caches what it reads) first.
          for (let q = 0; q < 8; q++) {
            const b = Math.floor(rnd() * (delayedAt + 400));
            const got = f.mapBlocks(inode, b, 64);
            const want = fresh(f, inode, b, 64);
            const inDelayed = inode.es.lookup(b)?.status === ES.DELAYED;
            if (!inDelayed) expect({ pblk: got.pblk, kind: got.kind }, `${name} op ${i} (${op}): mapBlocks(${b})`).toEqual({ pblk: want.pblk, kind: want.kind });
          }
          const after = diskRuns(f, inode, delayedAt + 400);
          if (after !== before) expect(inode.es.seq, `${name} op ${i} (${op}) changed the mapping`).not.toBe(seq);
          for (const t of held) expectTreeMatchesDisk(f, t, `${name} op ${i} (${op})`);
          held.forEach((t, j) => {
            const have = t.es.extents().filter((e) => e.status === ES.DELAYED).map((e) => [e.lblk, e.len]);
            expect(have, `${name} op ${i} (${op}): delayed extents of f${j}`).toEqual(delayed[j]);
          });

          function convertMapped(a: number, n: number, flags: number): void {
            let run = -1;
            for (let b = a; b <= a + n; b++) {
              const mapped = b < a + n && m.blocks.has(b);
              if (mapped && run < 0) run = b;
              if (!mapped && run >= 0) { mapRange(h, f, inode, m, run, b - run, flags); run = -1; }
            }
          }
        }
        // The delayed extents were the test's, not the disk's: gone before unmount.
        for (const t of held) t.es.remove(delayedAt, 400);
      } finally {
        held.forEach((t) => f.iput(t));
      }
    });
    console.log(`${name}: ${JSON.stringify(counts)}`);
    expectFsckClean(img, `${name}: after ${OPS} ops`);
  });
});
