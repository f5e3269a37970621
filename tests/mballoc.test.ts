// The block allocator judged by e2fsck: runs allocated with no owner are
// exactly e2fsck's "block bitmap differences" (so bitmaps, checksums and
// descriptors are otherwise exact), the same runs attached to files make the
// image clean, and freeing everything brings every count back. No-journal
// images (the handles are the no-journal mode's) over the on-disk variants.

import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Ext4Error, mount } from "../host/index.js";
import { BG_FLAGS } from "../host/format/group-desc.js";
import { Geometry, readBlockBitmap, setBlockBitmapCsum } from "../host/fs/block-bitmap.js";
import { groupFirstBlock, markGroupDescDirty } from "../host/fs/groups.js";
import { ALLOC, allocStats, claimFreeClusters, freeBlocks, goalForInode, inodeToGoalBlock, newBlocks, releaseClaim, type AllocResult } from "../host/fs/mballoc.js";
import type { Ext4 } from "../host/fs/super.js";
import { missingTools, runSync } from "./helpers/exec.js";
import { attachRuns, bitmapDifferences, clusterStarts, detachRuns, expectClean, freeCounts, fsOf, makeImage } from "./helpers/mballoc.js";

/** These tests see errors=continue at work: the volume stays writable after the first error (our default is remount-ro). */
const CONTINUE = { mountOptions: "errors=continue" };

const missing = missingTools(["mkfs.ext4", "e2fsck", "dumpe2fs"], "e2fsprogs");
if (missing) console.log(`mballoc: skipped: ${missing}`);
const d = missing ? describe.skip : describe;

let work: string;
beforeAll(() => { if (!missing) work = fs.mkdtempSync(path.join(os.tmpdir(), "ext4wasm-mballoc-")); });
afterAll(() => { if (work) fs.rmSync(work, { recursive: true, force: true }); });

/** name, mkfs args, -O features (besides ^has_journal), size. */
const variants: [string, string[], string, string][] = [
  ["4k", ["-b", "4096"], "", "512M"],
  ["1k", ["-b", "1024"], "", "96M"],
  ["4k-noflex-uninit-32bit", ["-b", "4096"], "^flex_bg,^metadata_csum,uninit_bg,^64bit", "512M"],
  ["1k-noflex-nocsum", ["-b", "1024"], "^flex_bg,^metadata_csum,^64bit", "64M"],
  ["bigalloc-16k", ["-b", "4096", "-C", "16384"], "bigalloc", "1G"],
  ["bigalloc-64k-1k", ["-b", "1024", "-C", "65536"], "bigalloc", "1G"],
  ["1k-meta_bg", ["-b", "1024"], "meta_bg,^resize_inode", "96M"],
  ["4k-sparse_super2-noflex", ["-b", "4096", "-g", "8192"], "sparse_super2,^flex_bg", "512M"],
];

d("runs across group boundaries", () => {
  it("one free of a run that spans two groups clears both bitmaps and both counts", () => {
    const img = makeImage(work, "span", ["-b", "1024"], "", "64M");
    const start = freeCounts(img);
    const vol = mount(img);
    try {
      const f = fsOf(vol);
      const h = f.startHandle(100);
      const edge = groupFirstBlock(f.sb, 4);
      const a = newBlocks(h, f, { goal: edge - 10, len: 10, flags: ALLOC.EXACT_GOAL });
      const b = newBlocks(h, f, { goal: edge, len: 10, flags: ALLOC.EXACT_GOAL });
      expect([a.pblk, b.pblk]).toEqual([edge - 10, edge]);
      const inode = { ...f.inode(vol.statSync("/f0").ino), blocks512: 40 };
      freeBlocks(h, f, inode, edge - 10, 20);
      expect(inode.blocks512).toBe(0);
      h.stop();
    } finally {
      vol.unmount();
    }
    expectClean(img);
    expect(freeCounts(img).groups).toEqual(start.groups);
  });
});

d("bigalloc partial clusters", () => {
  it("a free that starts or ends inside a cluster frees it whole unless the caller says the file still uses it", () => {
    const img = makeImage(work, "partial", ["-b", "1024", "-C", "16384"], "bigalloc", "256M");
    const vol = mount(img);
    try {
      const f = fsOf(vol);
      const ratio = f.sb.clusterSize / f.sb.blockSize;
      const h = f.startHandle(100);
      const inode = { ...f.inode(vol.statSync("/f0").ino), blocks512: 0 };
      const r = newBlocks(h, f, { inode, goal: 50000, len: 4 * ratio });
      expect(inode.blocks512).toBe(4 * ratio * 2);
      const bit = (b: number) => {
        const gd = f.groups[Math.floor(b / f.sb.blocksPerGroup)];
        const c = (b % f.sb.blocksPerGroup) / ratio;
        return (f.bcache.read(gd.blockBitmap)[c >> 3] >> (c & 7)) & 1;
      };
      // Blocks 5 .. 2 clusters + 3 of the run: the first and third clusters are shared with blocks the file keeps.
      freeBlocks(h, f, inode, r.pblk + 5, 2 * ratio - 2, { noFreeFirstCluster: true, noFreeLastCluster: true });
      expect([0, 1, 2, 3].map((k) => bit(r.pblk + k * ratio))).toEqual([1, 0, 1, 1]);
      expect(inode.blocks512).toBe(3 * ratio * 2);
      // Without the flags the partial clusters go too: [2*ratio+1, 3*ratio+1) covers clusters 2 and 3.
      freeBlocks(h, f, inode, r.pblk + 2 * ratio + 1, ratio);
      expect([0, 1, 2, 3].map((k) => bit(r.pblk + k * ratio))).toEqual([1, 0, 0, 0]);
      expect(inode.blocks512).toBe(ratio * 2);
      // A range inside one cluster the file still uses frees nothing.
      freeBlocks(h, f, inode, r.pblk + 1, 3, { noFreeFirstCluster: true });
      expect(bit(r.pblk)).toBe(1);
      freeBlocks(h, f, inode, r.pblk, ratio);
      expect(inode.blocks512).toBe(0);
      h.stop();
    } finally {
      vol.unmount();
    }
    expectClean(img);
  });
});

/** Requests that touch the first group, the middle of others, a BLOCK_UNINIT group, and the last group. */
function requests(f: Ext4): { goal: number; len: number }[] {
  const sb = f.sb;
  const ratio = sb.clusterSize / sb.blockSize;
  const n = f.groups.length;
  const uninit = f.groups.findIndex((g) => g.flags & BG_FLAGS.BLOCK_UNINIT);
  const out = [
    { goal: sb.firstDataBlock, len: 100 * ratio },
    { goal: groupFirstBlock(sb, Math.min(1, n - 1)) + 777 * ratio, len: 7 * ratio },
    { goal: groupFirstBlock(sb, n - 1) + 50 * ratio, len: 3000 * ratio },
    { goal: Math.floor(sb.blocksCount / 2), len: 1 },
    { goal: Math.floor(sb.blocksCount / 2), len: 5 * ratio },
  ];
  if (uninit > 0) out.push({ goal: groupFirstBlock(sb, uninit) + 3 * ratio, len: 40 * ratio });
  for (let i = 0; i < 10; i++) out.push({ goal: sb.firstDataBlock + i * 997 * ratio, len: (1 + i * 3) * ratio });
  return out;
}

d("allocation and free judged by e2fsck", () => {
  it.each(variants)("%s: allocated runs are exactly e2fsck's bitmap differences; freeing them restores every count", (name, args, features, size) => {
    const img = makeImage(work, `diff-${name}`, args, features, size);
    const start = freeCounts(img);
    const got: AllocResult[] = [];
    let ratio = 1;
    let vol = mount(img);
    try {
      const f = fsOf(vol);
      ratio = f.sb.clusterSize / f.sb.blockSize;
      const h = f.startHandle(100);
      for (const r of requests(f)) {
        const a = newBlocks(h, f, { goal: r.goal, len: r.len, flags: ALLOC.DATA });
        expect(a.len).toBeGreaterThanOrEqual(1);
        expect(a.len).toBeLessThanOrEqual(r.len);
        expect(a.pblk % ratio).toBe(0);
        expect(a.pblk + a.clusters * ratio).toBeLessThanOrEqual(f.sb.blocksCount);
        expect(f.systemZone!.overlapping(a.pblk, a.clusters * ratio)).toBeUndefined();
        got.push(a);
      }
      h.stop();
    } finally {
      vol.unmount();
    }
    const want = new Set(got.flatMap((a) => clusterStarts(a.pblk, a.clusters, ratio)));
    expect(want.size, "runs overlap").toBe(got.reduce((n, a) => n + a.clusters, 0));
    const diff = bitmapDifferences(img, ratio);
    expect(diff.plus.size).toBe(0);
    expect([...diff.minus].sort((a, b) => a - b)).toEqual([...want].sort((a, b) => a - b));
    const mid = freeCounts(img);
    expect(mid.free).toBe(start.free - got.reduce((n, a) => n + a.clusters * ratio, 0));

    vol = mount(img);
    try {
      const f = fsOf(vol);
      const h = f.startHandle(100);
      for (const a of got) freeBlocks(h, f, undefined, a.pblk, a.clusters * ratio);
      h.stop();
    } finally {
      vol.unmount();
    }
    expectClean(img);
    const end = freeCounts(img);
    expect(end.free).toBe(start.free);
    expect(end.groups).toEqual(start.groups);
  });

  it.each(variants)("%s: runs attached to files (i_blocks charged by the allocator) are e2fsck-clean, also from BLOCK_UNINIT groups", (name, args, features, size) => {
    const img = makeImage(work, `attach-${name}`, args, features, size);
    const start = freeCounts(img);
    const uninitBefore = start.flags.map((s) => s.includes("BLOCK_UNINIT"));
    let vol = mount(img);
    let used = 0;
    try {
      const f = fsOf(vol);
      const ratio = f.sb.clusterSize / f.sb.blockSize;
      const h = f.startHandle(100);
      const reqs = requests(f);
      // Four runs per file in the root (depth 0); file f7 gets ten runs behind a leaf block.
      for (let k = 0; k < 4; k++) {
        const inode = f.inode(vol.statSync(`/f${k}`).ino);
        const runs = reqs.slice(k * 4, k * 4 + 4).map((r) => newBlocks(h, f, { inode, goal: r.goal, len: Math.min(r.len, 32768 - 32768 % ratio), flags: ALLOC.DATA }));
        expect(inode.blocks512).toBe(runs.reduce((n, r) => n + r.clusters * ratio, 0) * (f.sb.blockSize / 512));
        attachRuns(h, f, inode, runs.map((r) => ({ pblk: r.pblk, len: r.clusters * ratio })));
        used += inode.blocks512 / (f.sb.blockSize / 512);
      }
      const inode = f.inode(vol.statSync("/f7").ino);
      const runs = Array.from({ length: 10 }, (_, i) => newBlocks(h, f, { inode, goal: f.sb.firstDataBlock + i * 3001 * ratio, len: 2 * ratio, flags: ALLOC.DATA }));
      attachRuns(h, f, inode, runs.map((r) => ({ pblk: r.pblk, len: r.clusters * ratio })));
      used += inode.blocks512 / (f.sb.blockSize / 512);
      h.stop();
    } finally {
      vol.unmount();
    }
    expectClean(img);
    const mid = freeCounts(img);
    expect(mid.free).toBe(start.free - used);
    if (uninitBefore.some(Boolean)) expect(mid.flags.filter((s) => s.includes("BLOCK_UNINIT")).length).toBeLessThan(uninitBefore.filter(Boolean).length);

    vol = mount(img);
    try {
      const f = fsOf(vol);
      const ratio = f.sb.clusterSize / f.sb.blockSize;
      const h = f.startHandle(100);
      for (const k of [0, 1, 2, 3, 7]) {
        const inode = f.inode(vol.statSync(`/f${k}`).ino);
        const runs = extentsOf(f, inode);
        detachRuns(h, f, inode, runs);
        expect(inode.blocks512).toBe(0);
        void ratio;
      }
      h.stop();
    } finally {
      vol.unmount();
    }
    expectClean(img);
    const end = freeCounts(img);
    expect(end.free).toBe(start.free);
    expect(end.groups).toEqual(start.groups);
  });
});

d("BLOCK_UNINIT groups", () => {
  it.each(variants.filter((v) => !v[2].includes("^metadata_csum") || v[2].includes("uninit_bg")))("%s: filling an uninitialised group to its last cluster takes exactly what e2fsck calls free there", (name, args, features, size) => {
    const img = makeImage(work, `uninit-${name}`, args, features, size);
    let ratio = 1;
    const got: number[] = [];
    const vol = mount(img);
    try {
      const f = fsOf(vol);
      ratio = f.sb.clusterSize / f.sb.blockSize;
      // The last uninitialised group (flex_bg packs other groups' metadata into the first ones; sparse_super2 and meta_bg move backups).
      let g = -1;
      f.groups.forEach((gd, i) => { if (gd.flags & BG_FLAGS.BLOCK_UNINIT) g = i; });
      if (g < 0) return void console.log(`mballoc: ${name} has no BLOCK_UNINIT group`);
      const free = f.groups[g].freeBlocks;
      const h = f.startHandle(100);
      const clusters = f.sb.clustersPerGroup;
      const first = groupFirstBlock(f.sb, g);
      for (let c = 0; c < clusters && first + c * ratio < f.sb.blocksCount; ) {
        try {
          const r = newBlocks(h, f, { goal: first + c * ratio, len: Math.min((clusters - c) * ratio, 32768), flags: ALLOC.EXACT_GOAL | ALLOC.MERGE });
          expect(r.pblk).toBe(first + c * ratio);
          got.push(...clusterStarts(r.pblk, r.clusters, ratio));
          c += r.clusters;
        } catch (e) {
          expect((e as Ext4Error).code).toBe("ENOSPC");
          c++;
        }
      }
      h.stop();
      expect(got.length).toBe(free);
      expect(f.groups[g].freeBlocks).toBe(0);
      expect(f.groups[g].flags & BG_FLAGS.BLOCK_UNINIT).toBe(0);
    } finally {
      vol.unmount();
    }
    if (!got.length) return;
    const diff = bitmapDifferences(img, ratio);
    expect(diff.plus.size).toBe(0);
    expect([...diff.minus].sort((a, b) => a - b)).toEqual(got.sort((a, b) => a - b));
  });
});

/** The file's runs as attachRuns wrote them, read back through our mapping. */
function extentsOf(f: Ext4, inode: ReturnType<Ext4["inode"]>) {
  const runs: { pblk: number; len: number }[] = [];
  const n = inode.size / f.sb.blockSize;
  for (let l = 0; l < n; ) {
    const m = f.mapBlocks(inode, l, n - l);
    runs.push({ pblk: m.pblk, len: m.len });
    l += m.len;
  }
  const root = inode.iBlock;
  const depth = root[6] | (root[7] << 8);
  const leaf = depth === 1 ? (root[16] | (root[17] << 8) | (root[18] << 16)) + root[19] * 2 ** 24 : undefined;
  return { runs, leaf };
}

d("layout", () => {
  it("a 64 MiB request on an empty filesystem gets a few long runs, the first at the goal", () => {
    const img = makeImage(work, "layout-64m", ["-b", "4096"], "", "1G");
    const vol = mount(img);
    try {
      const f = fsOf(vol);
      const inode = f.inode(vol.statSync("/f0").ino);
      const h = f.startHandle(100);
      const want = (64 << 20) / f.sb.blockSize;
      let goal = goalForInode(f, inode, 0);
      const firstGoal = goal;
      const runs: AllocResult[] = [];
      for (let left = want; left > 0; ) {
        const r = newBlocks(h, f, { inode, goal, len: Math.min(left, 32768), flags: ALLOC.DATA });
        runs.push(r);
        left -= r.len;
        goal = r.pblk + r.len; // ext4_ext_find_goal: right after the last extent
      }
      h.stop();
      console.log(`mballoc layout: 64 MiB in ${runs.length} runs: ${runs.map((r) => `${r.pblk}+${r.len}`).join(" ")}`);
      expect(runs.length).toBeLessThanOrEqual(4);
      // The goal itself holds the group's superblock backup: the first free block after it.
      expect(runs[0].pblk).toBeGreaterThanOrEqual(firstGoal);
      expect(runs[0].pblk).toBeLessThan(firstGoal + 1024);
      // Physically contiguous where the free space is (only the next group's metadata may split it).
      for (let i = 1; i < runs.length; i++) expect(runs[i].pblk).toBeGreaterThanOrEqual(runs[i - 1].pblk + runs[i - 1].len);
    } finally {
      vol.unmount();
    }
  });

  it("regular files start after their flex group's packed metadata; directories in its first group", () => {
    const img = makeImage(work, "layout-flex", ["-b", "4096", "-G", "4", "-N", "65536"], "", "2G");
    const vol = mount(img);
    try {
      const f = fsOf(vol);
      const file = f.inode(vol.statSync("/f0").ino);
      const dir = f.inode(2);
      expect(goalForInode(f, file, 0)).toBe(groupFirstBlock(f.sb, 1));
      expect(inodeToGoalBlock(f, dir)).toBe(groupFirstBlock(f.sb, 0));
      // A directory with blocks: right after the extent nearest the block asked for.
      const m = f.mapBlocks(dir, 0, 1);
      expect(goalForInode(f, dir, 1)).toBe(m.pblk + 1);
      expect(goalForInode(f, dir, 5)).toBe(m.pblk + 5);
      // An inode of group 5 (flex group 1) goes to group 5: the second group of groups 4..7.
      const other = { ...file, ino: 5 * f.sb.inodesPerGroup + 3 };
      expect(goalForInode(f, other, 0)).toBe(groupFirstBlock(f.sb, 5));
    } finally {
      vol.unmount();
    }
  });

  it("two files in different groups keep to their groups (no flex_bg), each growing after its last extent", () => {
    const img = makeImage(work, "layout-groups", ["-b", "1024"], "^flex_bg", "96M");
    const vol = mount(img);
    try {
      const f = fsOf(vol);
      const base = f.inode(vol.statSync("/f0").ino);
      const a = { ...base, ino: 3 * f.sb.inodesPerGroup + 1, blocks512: 0 };
      const b = { ...base, ino: 9 * f.sb.inodesPerGroup + 1, blocks512: 0 };
      const h = f.startHandle(100);
      const goals = new Map([[a, goalForInode(f, a, 0)], [b, goalForInode(f, b, 0)]]);
      for (let i = 0; i < 20; i++) {
        for (const ino of [a, b]) {
          const r = newBlocks(h, f, { inode: ino, goal: goals.get(ino)!, len: 37, flags: ALLOC.DATA });
          expect(Math.floor((r.pblk - f.sb.firstDataBlock) / f.sb.blocksPerGroup)).toBe(ino === a ? 3 : 9);
          if (i > 0) expect(r.pblk).toBe(goals.get(ino)); // contiguous with the previous run
          goals.set(ino, r.pblk + r.len);
        }
      }
      h.stop();
      expect(a.blocks512).toBe(20 * 37 * 2);
    } finally {
      vol.unmount();
    }
  });

  it("a request longer than any free run gets the longest run; a goal inside a used run moves forward", () => {
    const img = makeImage(work, "layout-frag", ["-b", "1024"], "^flex_bg", "16M");
    const vol = mount(img);
    try {
      const f = fsOf(vol);
      const h = f.startHandle(100);
      // Fill everything in runs of 50 blocks, then free every other run but one of 150 blocks.
      const runs: AllocResult[] = [];
      for (;;) {
        try { runs.push(newBlocks(h, f, { goal: f.sb.firstDataBlock, len: 50, flags: ALLOC.NOFAIL })); } catch (e) { expect((e as Ext4Error).code).toBe("ENOSPC"); break; }
      }
      const full = runs.filter((r) => r.len === 50);
      for (let i = 0; i + 1 < full.length; i += 2) freeBlocks(h, f, undefined, full[i].pblk, 50);
      const k = full.findIndex((r, i) => i % 2 === 0 && i + 3 < full.length && full[i + 2].pblk === r.pblk + 100 && full[i + 1].pblk === r.pblk + 50);
      expect(k).toBeGreaterThanOrEqual(0);
      freeBlocks(h, f, undefined, full[k + 1].pblk, 50); // k, k+1, k+2: 150 free blocks in a row
      const big = newBlocks(h, f, { goal: f.sb.firstDataBlock, len: 400 });
      expect(big).toMatchObject({ pblk: full[k].pblk, len: 150 });
      const at = newBlocks(h, f, { goal: full[1].pblk + 10, len: 20 });
      expect(at.pblk).toBeGreaterThan(full[1].pblk);
      h.stop();
    } finally {
      vol.unmount();
    }
  });
});

d("reserves and refusals", () => {
  it("the root reserve is kept from other users, the reserved clusters from all but NOFAIL; then ENOSPC", () => {
    const img = makeImage(work, "reserve", ["-b", "1024", "-m", "10"], "^flex_bg", "16M");
    const vol = mount(img);
    try {
      const f = fsOf(vol);
      const h = f.startHandle(100);
      const user = { uid: 1000, gid: 1000 };
      const take = (cred: typeof user | undefined, flags = 0) => {
        let n = 0;
        for (;;) {
          try { n += newBlocks(h, f, { goal: 0, len: 64, cred, flags }).len; } catch (e) { expect((e as Ext4Error).code).toBe("ENOSPC"); return n; }
        }
      };
      const rsv = f.sb.reservedBlocksCount;
      const resv = Math.min(Math.floor(f.sb.blocksCount / 50), 4096);
      take(user);
      expect(f.sb.freeBlocksCount).toBe(rsv + resv);
      take({ uid: 0, gid: 0 });
      expect(f.sb.freeBlocksCount).toBe(resv);
      take(undefined, ALLOC.NOFAIL);
      expect(f.sb.freeBlocksCount).toBe(0);
      h.stop();
    } finally {
      vol.unmount();
    }
    expect(bitmapDifferences(img, 1).plus.size).toBe(0);
  });

  it.each([
    ["4k, groups of 31920, the last 1104 blocks", ["-b", "4096"], "", "129M"],
    ["1k, last group 3615 blocks, no flex_bg", ["-b", "1024"], "^flex_bg", "20000K"],
  ])("%s: taking every free block never goes past the end, and e2fsck agrees block for block", (_name, args, features, size) => {
    const img = makeImage(work, `short-${args[1]}-${size}`, args, features, size as string);
    const got: number[] = [];
    const vol = mount(img);
    try {
      const f = fsOf(vol);
      const h = f.startHandle(100);
      for (;;) {
        try {
          const r = newBlocks(h, f, { goal: f.sb.blocksCount - 50, len: 700, flags: ALLOC.NOFAIL });
          expect(r.pblk + r.len).toBeLessThanOrEqual(f.sb.blocksCount);
          for (let b = r.pblk; b < r.pblk + r.len; b++) got.push(b);
        } catch (e) {
          expect((e as Ext4Error).code).toBe("ENOSPC");
          break;
        }
      }
      expect(f.sb.freeBlocksCount).toBe(0);
      expect(got).toContain(f.sb.blocksCount - 1);
      h.stop();
    } finally {
      vol.unmount();
    }
    const diff = bitmapDifferences(img, 1);
    expect(diff.plus.size).toBe(0);
    expect([...diff.minus].sort((a, b) => a - b)).toEqual(got.sort((a, b) => a - b));
  });

  it("clusters claimed for delayed allocation are not given to others; the claimant allocates them with DELALLOC_RESERVED", () => {
    const img = makeImage(work, "claim", ["-b", "1024", "-m", "0"], "^flex_bg", "16M");
    const vol = mount(img);
    try {
      const f = fsOf(vol);
      const h = f.startHandle(100);
      const { resvClusters } = allocStats(f);
      const claim = f.sb.freeBlocksCount - resvClusters - 100;
      claimFreeClusters(f, claim);
      expect(allocStats(f).dirtyClusters).toBe(claim);
      expect(() => claimFreeClusters(f, 101)).toThrow(expect.objectContaining({ code: "ENOSPC" }));
      // Others get what is left unclaimed (halving their request until it fits), then ENOSPC.
      expect(newBlocks(h, f, { goal: 0, len: 300 }).len).toBeLessThanOrEqual(100);
      let left = 0;
      for (;;) {
        try { left += newBlocks(h, f, { goal: 0, len: 100 }).len; } catch (e) { expect((e as Ext4Error).code).toBe("ENOSPC"); break; }
      }
      expect(left).toBeLessThan(100);
      // The claimant's writeback still finds its clusters.
      let got = 0;
      while (got < claim) got += newBlocks(h, f, { goal: 0, len: Math.min(claim - got, 1000), flags: ALLOC.DELALLOC_RESERVED }).len;
      releaseClaim(f, claim);
      expect(allocStats(f).dirtyClusters).toBe(0);
      expect(f.sb.freeBlocksCount).toBeLessThanOrEqual(resvClusters);
      h.stop();
    } finally {
      vol.unmount();
    }
  });

  it("double frees, frees of metadata and damaged bitmaps are EFSCORRUPTED, never a write", () => {
    const img = makeImage(work, "bad", ["-b", "1024"], "", "32M");
    const vol = mount(img, CONTINUE);
    try {
      const f = fsOf(vol);
      const h = f.startHandle(100);
      const r = newBlocks(h, f, { goal: 5000, len: 10 });
      freeBlocks(h, f, undefined, r.pblk, 10);
      expect(() => freeBlocks(h, f, undefined, r.pblk, 10)).toThrow(expect.objectContaining({ code: "EFSCORRUPTED" }));
      expect(() => freeBlocks(h, f, undefined, f.groups[0].inodeTable, 2)).toThrow(expect.objectContaining({ code: "EFSCORRUPTED" }));
      expect(() => freeBlocks(h, f, undefined, f.sb.blocksCount - 1, 2)).toThrow(expect.objectContaining({ code: "EFSCORRUPTED" }));
      expect(() => newBlocks(h, f, { goal: 0, len: 0 })).toThrow(expect.objectContaining({ code: "EINVAL" }));
      h.stop();
    } finally {
      vol.unmount();
    }
    expectClean(img);
  });

  it("a group whose bitmap fails its checksum is not allocated from (a warning says why)", () => {
    const img = makeImage(work, "badcsum", ["-b", "1024"], "^flex_bg", "32M");
    let bitmapBlock = 0;
    let vol = mount(img, { readOnly: true });
    try { bitmapBlock = fsOf(vol).groups[0].blockBitmap; } finally { vol.unmount(); }
    const fd = fs.openSync(img, "r+");
    fs.writeSync(fd, Buffer.from([0xff]), 0, 1, bitmapBlock * 1024 + 1000); // blocks marked used: checksum now wrong
    fs.closeSync(fd);
    vol = mount(img, CONTINUE);
    try {
      const f = fsOf(vol);
      const h = f.startHandle(100);
      const r = newBlocks(h, f, { goal: 7000, len: 10 });
      expect(Math.floor((r.pblk - 1) / f.sb.blocksPerGroup)).toBe(1);
      expect(f.warnings.join("\n")).toMatch(/block bitmap checksum mismatch in group 0/);
      expect(() => freeBlocks(h, f, undefined, 500, 1)).toThrow(expect.objectContaining({ code: "EFSCORRUPTED" }));
      h.stop();
    } finally {
      vol.unmount();
    }
  });

  it("a bitmap that calls metadata free is refused: at first use (bitmaps, inode tables) or before a run is handed out (the journal)", () => {
    const img = path.join(work, "journal-freed.img");
    runSync("mkfs.ext4", ["-q", "-F", "-b", "1024", img, "64M"]);
    const j = Number(runSync("debugfs", ["-R", "bmap <8> 0", img]).stdout.trim());
    let itable = 0;
    // Damage that checksums cannot see: bits cleared with the counts and checksums made to agree.
    let vol = mount(img);
    try {
      const f = fsOf(vol);
      itable = f.groups[3].inodeTable;
      // A journaled image: the damage goes through the journal like any metadata change.
      const h = f.startHandle(64);
      const geo = new Geometry(f.sb, f.groups);
      for (const [blk, n] of [[j + 100, 50], [itable, 4]]) {
        const g = geo.groupOf(blk);
        const bh = readBlockBitmap(f, geo, g);
        h.getWriteAccess(bh);
        f.wasm.x.bitmapFill(bh.data.byteOffset, geo.clusterInGroup(blk), geo.clusterInGroup(blk) + n, 0);
        setBlockBitmapCsum(f, geo, f.groups[g], bh.data);
        h.dirtyMetadata(bh);
        f.bcache.brelse(bh);
        f.groups[g].freeBlocks += n;
        markGroupDescDirty(h, f, g);
      }
      h.stop();
    } finally {
      vol.unmount();
    }
    vol = mount(img, CONTINUE);
    try {
      const f = fsOf(vol);
      const h = f.startHandle(64);
      expect(() => newBlocks(h, f, { goal: j + 100, len: 10, flags: ALLOC.EXACT_GOAL })).toThrow(expect.objectContaining({ code: "EFSCORRUPTED" }));
      const g = Math.floor((j + 100 - 1) / f.sb.blocksPerGroup);
      const next = newBlocks(h, f, { goal: j + 100, len: 10 });
      expect(Math.floor((next.pblk - 1) / f.sb.blocksPerGroup)).not.toBe(g);
      expect(f.warnings.join("\n")).toMatch(new RegExp(`group ${g} is not allocated from`));
      const r = newBlocks(h, f, { goal: itable, len: 10 });
      expect(f.systemZone!.overlapping(r.pblk, r.len)).toBeUndefined();
      expect(f.warnings.join("\n")).toMatch(new RegExp(`group 0 marks metadata blocks ${itable}-`));
      h.stop();
    } finally {
      vol.unmount();
    }
  });

  it("a read-only mount refuses with EROFS", () => {
    const img = makeImage(work, "ro", ["-b", "1024"], "", "16M");
    const before = fs.readFileSync(img);
    const vol = mount(img, { readOnly: true });
    try {
      const f = fsOf(vol);
      const h = { tid: 0 } as never;
      expect(() => newBlocks(h, f, { goal: 0, len: 1 })).toThrow(expect.objectContaining({ code: "EROFS" }));
      expect(() => freeBlocks(h, f, undefined, 5000, 1)).toThrow(expect.objectContaining({ code: "EROFS" }));
    } finally {
      vol.unmount();
    }
    expect(fs.readFileSync(img).equals(before)).toBe(true);
  });
});
