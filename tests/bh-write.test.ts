// The bh buffered write path (host/buffered/bh/write.ts, writepages.ts,
// sync.ts) through the fs layer: delalloc and nodelalloc, dioread_nolock and
// dioread_lock, data=ordered / writeback, journaled and not, 4k, 1k and
// bigalloc. Judged by our own reads, e2fsck -fn and the kernel.

import * as nfs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mount } from "../host/index.js";
import { allocStats } from "../host/fs/mballoc.js";
import { ext4MapBlocks, GET_BLOCKS } from "../host/fs/map-blocks.js";
import { markInodeDirty } from "../host/fs/inode-write.js";
import { missingTools } from "./helpers/exec.js";
import { loopMountSupport, withLoopMountSync } from "./helpers/kernel.js";
import { mulberry32 } from "./helpers/random.js";
import { createFile, expectClean, makeImage, open, pattern, readAll, rmrf } from "./helpers/bh-write.js";

const missing = missingTools(["e2fsck"], "e2fsprogs");
if (missing) console.log(`bh-write: e2fsck checks skipped: ${missing}`);
const d = missing ? describe.skip : describe;
const loop = loopMountSupport();
if (!loop.ok) console.log(`bh-write: kernel comparisons skipped: ${loop.reason}`);

let work: string;
beforeAll(() => { work = nfs.mkdtempSync(path.join(os.tmpdir(), "ext4wasm-bhw-")); });
afterAll(() => { if (work) rmrf(work); });

/** The kernel's bytes of root-directory files. */
function kernelRead(img: string, names: string[]): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  withLoopMountSync(img, (mnt) => { for (const n of names) out.set(n, nfs.readFileSync(path.join(mnt, n))); }, { readOnly: true });
  return out;
}

interface Variant { name: string; mkfs: Parameters<typeof makeImage>[3]; opts?: string }
const variants: Variant[] = [
  { name: "4k-ordered", mkfs: { blockSize: 4096 } },
  { name: "4k-ordered-dioread_lock", mkfs: { blockSize: 4096 }, opts: "dioread_lock" },
  { name: "4k-nodelalloc", mkfs: { blockSize: 4096 }, opts: "nodelalloc" },
  { name: "4k-writeback", mkfs: { blockSize: 4096 }, opts: "data=writeback" },
  { name: "4k-journal", mkfs: { blockSize: 4096 }, opts: "data=journal" },
  { name: "1k-journal", mkfs: { blockSize: 1024 }, opts: "data=journal" },
  { name: "1k-nojournal", mkfs: { blockSize: 1024, features: "^has_journal" } },
  { name: "1k-nodelalloc-nojournal", mkfs: { blockSize: 1024, features: "^has_journal" }, opts: "nodelalloc" },
  { name: "bigalloc", mkfs: { blockSize: 4096, features: "bigalloc", clusterSize: 65536 } },
  { name: "bigalloc-nodelalloc-1k", mkfs: { blockSize: 1024, features: "bigalloc", clusterSize: 16384 }, opts: "nodelalloc" },
  { name: "4k-nojournal-dioread_lock", mkfs: { blockSize: 4096, features: "^has_journal" }, opts: "dioread_lock" },
];

d("bh buffered writes", () => {
  it.each(variants)("$name: random writes match a model in our reads, e2fsck and the kernel", (v) => {
    const img = makeImage(work, `rand-${v.name}`, "64M", v.mkfs);
    const rnd = mulberry32(0xb0 + v.name.length);
    const names = ["a", "b", "c"];
    const models = names.map(() => Buffer.alloc(0));
    let m = open(img, v.opts);
    let files = names.map((n) => createFile(m.fs, n));
    try {
      for (let op = 0; op < 300; op++) {
        const k = Math.floor(rnd() * names.length);
        const f = files[k];
        const r = rnd();
        // Unaligned, partial-block, past-EOF (sparse) and block-edge writes.
        const pos = r < 0.3 ? models[k].length + Math.floor(rnd() * 20000) : Math.floor(rnd() * (models[k].length + 8192));
        const len = rnd() < 0.2 ? 1 + Math.floor(rnd() * 16) : rnd() < 0.5 ? 1 + Math.floor(rnd() * 9000) : 1 + Math.floor(rnd() * 300000);
        const data = pattern(op, len);
        expect(m.io.write(f, pos, data)).toBe(len);
        if (pos + len > models[k].length) {
          const grown = Buffer.alloc(pos + len);
          models[k].copy(grown);
          models[k] = grown;
        }
        models[k].set(data, pos);
        expect(f.size).toBe(models[k].length);
        const q = rnd();
        if (q < 0.05) m.io.fsync(f, rnd() < 0.5);
        else if (q < 0.1) m.io.writeback(f, 0, Infinity, false);
        if (op % 50 === 49) {
          for (let i = 0; i < names.length; i++) expect(readAll(m, files[i]).equals(models[i]), `${names[i]} at op ${op}`).toBe(true);
        }
        if (op === 150) {
          // Unmount and remount midway: everything written reaches the image.
          for (const f2 of files) m.fs.iput(f2);
          m.vol.unmount();
          expectClean(img);
          m = open(img, v.opts);
          files = names.map((_, i) => m.fs.iget(files[i].ino));
          for (let i = 0; i < names.length; i++) expect(readAll(m, files[i]).equals(models[i]), `${names[i]} after remount`).toBe(true);
        }
      }
      for (const f of files) expect(f.reservedDataBlocks).toBeGreaterThanOrEqual(0);
    } finally {
      for (const f of files) m.fs.iput(f);
      m.vol.unmount();
    }
    expectClean(img);
    const again = mount(img, { readOnly: true });
    try {
      for (let i = 0; i < names.length; i++) expect((again.readFileSync(`/${names[i]}`) as Buffer).equals(models[i]), names[i]).toBe(true);
    } finally {
      again.unmount();
    }
    if (loop.ok) {
      const k = kernelRead(img, names);
      for (let i = 0; i < names.length; i++) expect(k.get(names[i])!.equals(models[i]), `kernel: ${names[i]}`).toBe(true);
    }
  });

  it.each([["dioread_nolock", ""], ["dioread_lock", "dioread_lock"], ["nodelalloc", "nodelalloc"]])("%s: writes into preallocated (unwritten) extents read back exactly, partial blocks zero-filled", (_n, opts) => {
    const img = makeImage(work, `unwritten-${_n}`, "32M", { blockSize: 4096 });
    const m = open(img, opts || undefined);
    const f = createFile(m.fs, "p");
    const model = Buffer.alloc(40 * 4096);
    try {
      // fallocate KEEP_SIZE's effect: blocks 0..39 unwritten, i_size 0.
      const h = m.fs.startHandle(64);
      for (let lblk = 0; lblk < 40; ) lblk += ext4MapBlocks(h, m.fs, f, { lblk, len: 40 - lblk }, GET_BLOCKS.CREATE_UNWRIT_EXT).len;
      markInodeDirty(h, m.fs, f);
      h.stop();
      const blocks = f.blocks512;
      for (const [pos, len] of [[100, 5000], [20000, 30000], [90000, 1], [4096 * 39 + 10, 4000]]) {
        const data = pattern(pos, len);
        m.io.write(f, pos, data);
        model.set(data, pos);
      }
      const size = 4096 * 39 + 4010;
      expect(f.size).toBe(size);
      expect(readAll(m, f).equals(model.subarray(0, size))).toBe(true);
      m.io.fsync(f, false);
      // Written into the preallocation: no data block allocated (splitting the extents may take one tree block).
      expect(f.blocks512 - blocks).toBeLessThanOrEqual(4096 / 512);
      expect(readAll(m, f).equals(model.subarray(0, size))).toBe(true);
      m.fs.iput(f);
      m.vol.unmount();
      expectClean(img);
      const again = mount(img, { readOnly: true });
      try {
        expect((again.readFileSync("/p") as Buffer).equals(model.subarray(0, size))).toBe(true);
      } finally {
        again.unmount();
      }
      if (loop.ok) expect(kernelRead(img, ["p"]).get("p")!.equals(model.subarray(0, size))).toBe(true);
    } catch (e) {
      try { m.vol.unmount(); } catch { /* already */ }
      throw e;
    }
  });

  it("delayed allocation: nothing is allocated until writeback, then the reservation becomes the allocation", () => {
    const img = makeImage(work, "da-account", "64M", { blockSize: 4096, features: "^has_journal" });
    const m = open(img);
    const f = createFile(m.fs, "f");
    try {
      const before = allocStats(m.fs);
      m.io.write(f, 0, pattern(1, 100 * 4096));
      expect(f.delayedBlocks).toBe(100);
      expect(f.reservedDataBlocks).toBe(100);
      expect(allocStats(m.fs).dirtyClusters).toBe(before.dirtyClusters + 100);
      expect(allocStats(m.fs).freeClusters).toBe(before.freeClusters);
      expect(f.disksize).toBe(0);
      m.io.writeback(f, 0, Infinity, true);
      expect(f.delayedBlocks).toBe(0);
      expect(f.reservedDataBlocks).toBe(0);
      expect(allocStats(m.fs).dirtyClusters).toBe(before.dirtyClusters);
      expect(allocStats(m.fs).freeClusters).toBeLessThanOrEqual(before.freeClusters - 100);
      expect(f.disksize).toBe(100 * 4096);
      expect(f.dirtyFolios).toBe(0);
    } finally {
      m.fs.iput(f);
      m.vol.unmount();
    }
    expectClean(img);
  });
});

d("bh writes at the limits", () => {
  it.each([["delalloc", ""], ["nodelalloc", "nodelalloc"]])("%s: ENOSPC comes at write time, a failed reservation leaves the counts as they were, writeback never fails", (_n, opts) => {
    const img = makeImage(work, `enospc-${_n}`, "16M", { blockSize: 4096 });
    const m = open(img, opts || undefined);
    const f = createFile(m.fs, "fill");
    let model = Buffer.alloc(0);
    let failedAt = -1;
    try {
      for (let i = 0; i < 200 && failedAt < 0; i++) {
        const data = pattern(i, 300_000 + i);
        const before = allocStats(m.fs);
        const reserved = f.reservedDataBlocks;
        let n = 0;
        try {
          n = m.io.write(f, model.length, data);
        } catch (e) {
          expect(e).toMatchObject({ code: "ENOSPC", ino: f.ino });
          // Nothing of the failed call stays claimed or allocated.
          expect(allocStats(m.fs)).toEqual(before);
          expect(f.reservedDataBlocks).toBe(reserved);
          failedAt = i;
        }
        model = Buffer.concat([model, Buffer.from(data.subarray(0, n))]);
        expect(f.size).toBe(model.length);
      }
      expect(failedAt).toBeGreaterThan(0);
      m.io.fsync(f, false);
      expect(m.fs.warnings.filter((w) => w.includes("allocation failed"))).toEqual([]);
      expect(f.reservedDataBlocks).toBe(0);
      expect(allocStats(m.fs).dirtyClusters).toBe(0);
      expect(readAll(m, f).equals(model)).toBe(true);
    } finally {
      m.fs.iput(f);
      m.vol.unmount();
    }
    expectClean(img);
    const again = mount(img, { readOnly: true });
    try {
      expect((again.readFileSync("/fill") as Buffer).equals(model)).toBe(true);
    } finally {
      again.unmount();
    }
  });

  it("writing 6x the cache budget stays within it, dirty bytes near the threshold, and reads back exactly", () => {
    const img = makeImage(work, "budget", "128M", { blockSize: 4096 });
    const cacheSize = 8 << 20;
    const m = open(img, undefined, cacheSize);
    const f = createFile(m.fs, "big");
    const chunk = 64 << 10;
    const total = 6 * cacheSize;
    const { dirty } = m.fs.cache.writeback.thresholds();
    let maxDirty = 0;
    try {
      for (let pos = 0; pos < total; pos += chunk) {
        m.io.write(f, pos, pattern(pos / chunk, chunk));
        const s = m.fs.cache.stats();
        expect(s.usedBytes).toBeLessThanOrEqual(s.capacityBytes);
        maxDirty = Math.max(maxDirty, s.dirtyBytes + s.writebackBytes);
      }
      // balance_dirty_pages runs after each folio: past the threshold by at most one folio of the write.
      expect(maxDirty).toBeLessThanOrEqual(dirty + chunk);
      m.io.fsync(f, false);
    } finally {
      m.fs.iput(f);
      m.vol.unmount();
    }
    expectClean(img);
    const again = mount(img, { readOnly: true, cacheSize });
    try {
      const got = again.readFileSync("/big") as Buffer;
      expect(got.length).toBe(total);
      for (let pos = 0; pos < total; pos += chunk) expect(Buffer.from(pattern(pos / chunk, chunk)).equals(got.subarray(pos, pos + chunk)), `chunk at ${pos}`).toBe(true);
    } finally {
      again.unmount();
    }
  });
});
