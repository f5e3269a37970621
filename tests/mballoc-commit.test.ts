// Freed blocks stay unusable until the transaction that freed them commits
// (mballoc's freed-data list), with a journaled handle whose commit
// callbacks the test fires by hand; data=writeback data is exempt; ENOSPC
// that a commit would cure says so (needsCommitToFree) and the retry helper
// forces the commit and succeeds.

import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Ext4Error, mkfs, mount } from "../host/index.js";
import { ALLOC, allocStats, freeBlocks, needsCommitToFree, newBlocks, retryOnEnospc, type AllocResult } from "../host/fs/mballoc.js";
import type { Ext4 } from "../host/fs/super.js";
import { missingTools } from "./helpers/exec.js";
import { bitmapDifferences, clusterStarts, expectClean, FakeTxn, fakeJournalHandle, freeCounts, fsOf, makeImage } from "./helpers/mballoc.js";

const missing = missingTools(["mkfs.ext4", "e2fsck", "dumpe2fs"], "e2fsprogs");
if (missing) console.log(`mballoc-commit: skipped: ${missing}`);
const d = missing ? describe.skip : describe;

let work: string;
beforeAll(() => { if (!missing) work = fs.mkdtempSync(path.join(os.tmpdir(), "ext4wasm-mbcommit-")); });
afterAll(() => { if (work) fs.rmSync(work, { recursive: true, force: true }); });

const overlaps = (a: { pblk: number; len: number }, b: { pblk: number; len: number }) => a.pblk < b.pblk + b.len && b.pblk < a.pblk + a.len;

/** Takes every free block (reserves too) in runs of `len`. */
function fillUp(f: Ext4, len: number): AllocResult[] {
  const h = f.startHandle(100);
  const out: AllocResult[] = [];
  for (;;) {
    try { out.push(newBlocks(h, f, { goal: f.sb.firstDataBlock, len, flags: ALLOC.NOFAIL })); } catch (e) { expect((e as Ext4Error).code).toBe("ENOSPC"); break; }
  }
  h.stop();
  return out;
}

d("freed blocks wait for the commit", () => {
  it("a run freed in a running transaction is not handed out again until its commit callback runs", () => {
    const img = makeImage(work, "defer", ["-b", "4096"], "", "256M");
    const vol = mount(img);
    try {
      const f = fsOf(vol);
      const h0 = f.startHandle(10);
      const a = newBlocks(h0, f, { goal: 40000, len: 64 });
      h0.stop();
      const txn = new FakeTxn(7);
      const h = fakeJournalHandle(f.bcache, txn);
      const freeBefore = f.sb.freeBlocksCount;
      freeBlocks(h, f, undefined, a.pblk, 64);
      // On disk the run is free in this transaction (bitmap, descriptor, superblock counter) ...
      expect(f.sb.freeBlocksCount).toBe(freeBefore + 64);
      expect(allocStats(f).pendingClusters).toBe(64);
      expect(needsCommitToFree(f)).toBe(true);
      // ... but neither at its goal nor anywhere else does the allocator give it out.
      const b = newBlocks(h, f, { goal: a.pblk, len: 64 });
      expect(overlaps(a, b)).toBe(false);
      const c = newBlocks(h, f, { goal: a.pblk + 10, len: 1, flags: ALLOC.MERGE });
      expect(overlaps(a, c)).toBe(false);
      expect(() => newBlocks(h, f, { goal: a.pblk, len: 8, flags: ALLOC.EXACT_GOAL })).toThrow(expect.objectContaining({ code: "ENOSPC" }));
      txn.commit();
      expect(needsCommitToFree(f)).toBe(false);
      const again = newBlocks(h, f, { goal: a.pblk, len: 64, flags: ALLOC.EXACT_GOAL });
      expect(again.pblk).toBe(a.pblk);
      h.stop();
    } finally {
      vol.unmount();
    }
  });

  it("metadata is forgotten (revoked) through the handle and always waits; data=writeback data does not", () => {
    const img = makeImage(work, "forget", ["-b", "1024"], "", "64M");
    const vol = mount(img);
    try {
      const f = fsOf(vol);
      const h0 = f.startHandle(10);
      const meta = newBlocks(h0, f, { goal: 20000, len: 2, flags: ALLOC.METADATA });
      const bh = f.bcache.getblk(meta.pblk);
      h0.getCreateAccess(bh);
      bh.data.fill(0x5a);
      h0.dirtyMetadata(bh);
      f.bcache.brelse(bh);
      const data = newBlocks(h0, f, { goal: 30000, len: 16 });
      h0.stop();
      const txn = new FakeTxn(3);
      const h = fakeJournalHandle(f.bcache, txn);
      freeBlocks(h, f, undefined, meta.pblk, 2, { metadata: true, writebackData: true });
      expect(txn.forgotten).toEqual([{ blocknr: meta.pblk, isMetadata: true, hadBh: true }, { blocknr: meta.pblk + 1, isMetadata: true, hadBh: false }]);
      expect(f.bcache.peek(meta.pblk)?.dirty ?? false).toBe(false);
      freeBlocks(h, f, undefined, data.pblk, 16, { writebackData: true });
      expect(allocStats(f).pendingClusters).toBe(2);
      expect(newBlocks(h, f, { goal: data.pblk, len: 16, flags: ALLOC.EXACT_GOAL }).pblk).toBe(data.pblk);
      expect(() => newBlocks(h, f, { goal: meta.pblk, len: 1, flags: ALLOC.EXACT_GOAL })).toThrow(expect.objectContaining({ code: "ENOSPC" }));
      txn.commit();
      expect(newBlocks(h, f, { goal: meta.pblk, len: 2, flags: ALLOC.EXACT_GOAL }).pblk).toBe(meta.pblk);
      h.stop();
    } finally {
      vol.unmount();
    }
  });

  it("ENOSPC while freed blocks wait says so; the retry helper forces the commit and gets exactly them", () => {
    const img = makeImage(work, "enospc", ["-b", "1024"], "^flex_bg", "8M");
    const start = freeCounts(img);
    const vol = mount(img);
    let all: AllocResult[] = [];
    try {
      const f = fsOf(vol);
      all = fillUp(f, 100);
      expect(f.sb.freeBlocksCount).toBe(0);
      const victim = all[3];
      const txn = new FakeTxn(11);
      const h = fakeJournalHandle(f.bcache, txn);
      freeBlocks(h, f, undefined, victim.pblk, victim.len);
      h.stop();
      const attempt = () => {
        const h2 = fakeJournalHandle(f.bcache, new FakeTxn(12));
        try { return newBlocks(h2, f, { goal: 0, len: victim.len, flags: ALLOC.NOFAIL }); } finally { h2.stop(); }
      };
      let err: Ext4Error | undefined;
      try { attempt(); } catch (e) { err = e as Ext4Error; }
      expect(err?.code).toBe("ENOSPC");
      expect(err?.message).toMatch(/wait for a commit/);
      expect(needsCommitToFree(f)).toBe(true);
      let commits = 0;
      // A caller without the reserve would not retry: the 100 freed blocks are all within it.
      expect(() => retryOnEnospc(f, attempt, () => { throw new Error("no commit expected"); })).toThrow(expect.objectContaining({ code: "ENOSPC" }));
      const got = retryOnEnospc(f, attempt, () => { commits++; txn.commit(); }, { flags: ALLOC.NOFAIL });
      expect(commits).toBe(1);
      expect(got).toMatchObject({ pblk: victim.pblk, len: victim.len });
      // Without anything pending the helper gives up at once.
      expect(() => retryOnEnospc(f, attempt, () => { throw new Error("no commit expected"); }, { flags: ALLOC.NOFAIL })).toThrow(expect.objectContaining({ code: "ENOSPC" }));
      // Everything back through a no-journal handle: the image is as mkfs left it.
      const h3 = f.startHandle(10);
      for (const r of all) freeBlocks(h3, f, undefined, r.pblk, r.len);
      h3.stop();
    } finally {
      vol.unmount();
    }
    expectClean(img);
    expect(freeCounts(img).groups).toEqual(start.groups);
    expect(freeCounts(img).free).toBe(start.free);
  });

  it("with bigalloc the deferral and the counts are per cluster", () => {
    const img = makeImage(work, "defer-bigalloc", ["-b", "4096", "-C", "65536"], "bigalloc", "1G");
    const vol = mount(img);
    let kept: AllocResult | undefined;
    let ratio = 1;
    try {
      const f = fsOf(vol);
      ratio = f.sb.clusterSize / f.sb.blockSize;
      const h0 = f.startHandle(10);
      const a = newBlocks(h0, f, { goal: 100000 + 3, len: 20 }); // two clusters of 16 blocks, from the goal's cluster
      expect(a).toMatchObject({ pblk: 100000 - (100000 % ratio), len: 20, clusters: 2 });
      kept = newBlocks(h0, f, { goal: 200000, len: 1 });
      h0.stop();
      const txn = new FakeTxn(1);
      const h = fakeJournalHandle(f.bcache, txn);
      // Freeing a block range inside the clusters frees the whole clusters.
      freeBlocks(h, f, undefined, a.pblk + 5, 20);
      expect(allocStats(f).pendingClusters).toBe(2);
      expect(overlaps(newBlocks(h, f, { goal: a.pblk, len: 32 }), { pblk: a.pblk, len: 32 })).toBe(false);
      txn.commit();
      expect(newBlocks(h, f, { goal: a.pblk, len: 32, flags: ALLOC.EXACT_GOAL }).pblk).toBe(a.pblk);
      h.stop();
    } finally {
      vol.unmount();
    }
    const diff = bitmapDifferences(img, ratio);
    expect(diff.minus.has(kept!.pblk)).toBe(true);
    expect(diff.minus.size).toBe(clusterStarts(0, 1 + 2 + 2, ratio).length);
  });
});

d("data=journal: freed file data is forgotten", () => {
  // Found by fsstress under data=journal: a file's journalled data blocks, truncated away and
  // committed, were freed without jbd2_journal_forget; the allocator handed one to a new directory
  // and the engine threw "block N allocated as data while the journal still holds it".
  it("a truncated file's journalled blocks are reusable after the commit; e2fsck clean", () => {
    const img = path.join(work, "dj-forget.img");
    mkfs(img, { size: "16M", blockSize: 4096 });
    const vol = mount(img, { mountOptions: "data=journal" });
    try {
      const fd = vol.openSync("/f", "w");
      vol.writeSync(fd, Buffer.alloc(4096 * 4, 1));
      vol.fsyncSync(fd); // the data blocks are journalled and wait for checkpoint
      vol.ftruncateSync(fd, 0);
      vol.fsyncSync(fd); // the free commits: the blocks are the allocator's again
      vol.closeSync(fd);
      for (let i = 0; i < 8; i++) vol.mkdirSync(`/d${i}`);
      vol.writeFileSync("/g", Buffer.alloc(4096 * 8, 2));
      vol.sync();
      expect(Buffer.compare(vol.readFileSync("/g") as Buffer, Buffer.alloc(4096 * 8, 2))).toBe(0);
    } finally {
      vol.unmount();
    }
    expectClean(img);
  });
});

d("journaled data blocks are forgotten when freed (ext4_remove_blocks' FORGET for ext4_should_journal_data)", () => {
  // Found by the crash sweep: in data=journal a punched or truncated file's
  // blocks stayed attached to the journal (waiting for their checkpoint), so
  // reusing one after the commit (here for directory blocks) hit the
  // "allocated while the journal still holds it" check.
  it.each([["punch hole"], ["truncate to 0"]])("data=journal: %s, commit, then reuse of the blocks", (how) => {
    const img = path.join(work, `jdata-forget-${how.replace(/ /g, "-")}.img`);
    const r = mkfs(img, { size: "16M", blockSize: 4096, uuid: "3a6a2f1e-5b4c-4d3e-8f2a-1b2c3d4e5f60" });
    expect(r.journalBlocks).toBeGreaterThan(0);
    const vol = mount(img, { mountOptions: "data=journal" });
    try {
      const fd = vol.openSync("/f", "w");
      vol.writeSync(fd, Buffer.alloc(80000, 1), 0, 80000, 0);
      vol.fsyncSync(fd);
      if (how === "punch hole") vol.fallocateSync(fd, 0, 80000, { punchHole: true, keepSize: true });
      else vol.ftruncateSync(fd, 0);
      vol.fsyncSync(fd);
      vol.closeSync(fd);
      for (let i = 0; i < 30; i++) vol.mkdirSync(`/d${i}`);
    } finally {
      vol.unmount();
    }
    expectClean(img);
  });
});
