// Seeded random allocate / free / commit sequences checked against a model:
// every run handed out is free in the model (never a block we hold, never one
// freed by an uncommitted transaction, never metadata), the bitmap bits and
// the descriptor and superblock counts follow the model after every step,
// and at the end e2fsck's bitmap differences are exactly the model's blocks.

import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Ext4Error, mount } from "../host/index.js";
import { Geometry, readBlockBitmap } from "../host/fs/block-bitmap.js";
import { ALLOC, freeBlocks, newBlocks } from "../host/fs/mballoc.js";
import type { Handle } from "../host/journal/handle.js";
import { missingTools } from "./helpers/exec.js";
import { bitmapDifferences, FakeTxn, fakeJournalHandle, fsOf, makeImage } from "./helpers/mballoc.js";
import { mulberry32 } from "./helpers/random.js";

const missing = missingTools(["mkfs.ext4", "e2fsck", "dumpe2fs"], "e2fsprogs");
if (missing) console.log(`mballoc-random: skipped: ${missing}`);
const d = missing ? describe.skip : describe;

let work: string;
beforeAll(() => { if (!missing) work = fs.mkdtempSync(path.join(os.tmpdir(), "ext4wasm-mbrandom-")); });
afterAll(() => { if (work) fs.rmSync(work, { recursive: true, force: true }); });


const variants: [string, string[], string, string, number][] = [
  ["1k-flex", ["-b", "1024"], "", "32M", 1],
  ["4k-noflex-uninit", ["-b", "4096", "-g", "4096"], "^flex_bg,^metadata_csum,uninit_bg", "64M", 2],
  ["bigalloc-16k", ["-b", "1024", "-C", "16384"], "bigalloc", "64M", 3],
];

d("random allocation against a model", () => {
  it.each(variants)("%s: 1500 seeded operations", (name, args, features, size, seed) => {
    const img = makeImage(work, `rand-${name}`, args, features, size, 1);
    const rnd = mulberry32(seed * 7919);
    const int = (n: number) => Math.floor(rnd() * n);
    const vol = mount(img);
    let ratio = 1;
    /** Our clusters (first block of each), those freed but uncommitted (by txn), and our runs. */
    const mine = new Set<number>();
    const runs: { pblk: number; clusters: number }[] = [];
    try {
      const f = fsOf(vol);
      const sb = f.sb;
      ratio = sb.clusterSize / sb.blockSize;
      const geo = new Geometry(sb, f.groups);
      const startFree = f.groups.map((g) => g.freeBlocks);
      const mineIn = new Array<number>(f.groups.length).fill(0);
      let txn = new FakeTxn(1);
      let jh: Handle = fakeJournalHandle(f.bcache, txn);
      let pending = new Set<number>();
      const inflight: { txn: FakeTxn; freed: Set<number> }[] = [];
      const nh = f.startHandle(1000);
      const touched = new Set<number>();
      const check = () => {
        const byGroup = new Map<number, number[]>();
        for (const c of touched) {
          const g = geo.groupOf(c);
          if (!byGroup.has(g)) byGroup.set(g, []);
          byGroup.get(g)!.push(c);
        }
        for (const [g, list] of byGroup) {
          const bh = readBlockBitmap(f, geo, g);
          try {
            const b = bh.data;
            for (const c of list) {
              const bit = geo.clusterInGroup(c);
              if (((b[bit >> 3] >> (bit & 7)) & 1) !== (mine.has(c) ? 1 : 0)) expect.fail(`bitmap bit of the cluster at block ${c} is not ${mine.has(c) ? 1 : 0}`);
            }
          } finally {
            f.bcache.brelse(bh);
          }
        }
        f.groups.forEach((g, i) => expect(g.freeBlocks, `group ${i} free`).toBe(startFree[i] - mineIn[i]));
        expect(sb.freeBlocksCount).toBe(startFree.reduce((a, b) => a + b, 0) * ratio - mine.size * ratio);
      };
      for (let op = 0; op < 1500; op++) {
        const r = rnd();
        if (r < 0.5) {
          const len = rnd() < 0.1 ? 1 + int(6000) : 1 + int(300);
          const goal = int(sb.blocksCount);
          const flags = [0, 0, 0, ALLOC.MERGE, ALLOC.EXACT_GOAL, ALLOC.NOFAIL][int(6)];
          const h = rnd() < 0.5 ? jh : nh;
          let a;
          try {
            a = newBlocks(h, f, { goal, len, flags });
          } catch (e) {
            expect((e as Ext4Error).code).toBe("ENOSPC");
            continue;
          }
          expect(a.pblk % ratio).toBe(0);
          expect(a.pblk + a.clusters * ratio).toBeLessThanOrEqual(sb.blocksCount);
          expect(f.systemZone!.overlapping(a.pblk, a.clusters * ratio)).toBeUndefined();
          if (flags & ALLOC.EXACT_GOAL) expect(a.pblk).toBe(goal - (goal % ratio));
          for (let k = 0; k < a.clusters; k++) {
            const c = a.pblk + k * ratio;
            expect(mine.has(c), `block ${c} handed out twice`).toBe(false);
            expect(pending.has(c) || inflight.some((t) => t.freed.has(c)), `block ${c} reused before its free committed`).toBe(false);
            mine.add(c);
            mineIn[geo.groupOf(c)]++;
            touched.add(c);
          }
          runs.push({ pblk: a.pblk, clusters: a.clusters });
        } else if (r < 0.85 && runs.length) {
          const i = int(runs.length);
          const run = runs[i];
          const from = int(run.clusters);
          const n = 1 + int(run.clusters - from);
          const journaled = rnd() < 0.6;
          // With bigalloc, a block range inside the clusters frees the whole clusters.
          const off = ratio > 1 ? int(ratio) : 0;
          const blocks = n * ratio - off - (ratio > 1 ? int(ratio - off) : 0);
          freeBlocks(journaled ? jh : nh, f, undefined, run.pblk + from * ratio + off, blocks);
          runs.splice(i, 1);
          if (from > 0) runs.push({ pblk: run.pblk, clusters: from });
          if (from + n < run.clusters) runs.push({ pblk: run.pblk + (from + n) * ratio, clusters: run.clusters - from - n });
          for (let k = from; k < from + n; k++) {
            const c = run.pblk + k * ratio;
            mine.delete(c);
            mineIn[geo.groupOf(c)]--;
            if (journaled) pending.add(c);
          }
        } else {
          // Commit: the running transaction closes; the oldest in flight commits (sometimes one lags behind).
          inflight.push({ txn, freed: pending });
          jh.stop();
          pending = new Set();
          txn = new FakeTxn(txn.tid + 1);
          jh = fakeJournalHandle(f.bcache, txn);
          if (inflight.length > 1 || rnd() < 0.5) inflight.shift()!.txn.commit();
        }
        if (op % 50 === 0) check();
      }
      check();
      nh.stop();
    } finally {
      vol.unmount();
    }
    const diff = bitmapDifferences(img, ratio);
    expect(diff.plus.size).toBe(0);
    expect([...diff.minus].sort((a, b) => a - b)).toEqual([...mine].sort((a, b) => a - b));
  });
});
