// Delayed-allocation accounting (host/fs/delalloc.ts) and page-cache
// truncation (host/cache/truncate.ts), on in-memory images made by our mkfs.

import { describe, expect, it } from "vitest";
import { MemoryDevice, mkfs, mount } from "../host/index.js";
import { PAGE_SIZE, TAG } from "../host/cache/folio-cache.js";
import { setInvalidateFolioHook, truncateInodePages } from "../host/cache/truncate.js";
import { S_IFREG } from "../host/format/inode.js";
import { daAddClusters, daAllocated, daClustersToReserve, daReleaseSpace, daReserveSpace, esRemoveExtent } from "../host/fs/delalloc.js";
import { ES } from "../host/fs/extents-status.js";
import { newInode } from "../host/fs/ialloc.js";
import type { Ext4Inode } from "../host/fs/inode.js";
import { markInodeDirty } from "../host/fs/inode-write.js";
import { allocStats } from "../host/fs/mballoc.js";
import type { Ext4 } from "../host/fs/super.js";
import type { Volume } from "../host/vfs/volume.js";

function image(opts: Parameters<typeof mkfs>[1]): { vol: Volume; fs: Ext4 } {
  const dev = new MemoryDevice(new Uint8Array(32 << 20));
  mkfs(dev, { uuid: "3a6a2f1e-5b4c-4d3e-8f2a-1b2c3d4e5f60", hashSeed: "1b2c3d4e-0000-4000-8000-000000000001", ...opts });
  const vol = mount(dev);
  return { vol, fs: vol.fs };
}

function newFile(fs: Ext4): Ext4Inode {
  const h = fs.startHandle(32);
  try {
    const ino = newInode(h, fs, fs.inode(2), S_IFREG | 0o644);
    markInodeDirty(h, fs, ino);
    return ino;
  } finally {
    h.stop();
  }
}

describe("delalloc reservations", () => {
  it("reserve claims free clusters, release gives them back, and ENOSPC leaves the counts as they were", () => {
    const { vol, fs } = image({ features: "^has_journal" });
    const f = newFile(fs);
    const before = allocStats(fs);
    daReserveSpace(fs, f, 10);
    expect(f.reservedDataBlocks).toBe(10);
    expect(allocStats(fs).dirtyClusters).toBe(before.dirtyClusters + 10);
    daReleaseSpace(fs, f, 4);
    expect(f.reservedDataBlocks).toBe(6);
    expect(allocStats(fs).dirtyClusters).toBe(before.dirtyClusters + 6);
    // More than is free: ENOSPC with the inode named, nothing claimed.
    let err: unknown;
    try { daReserveSpace(fs, f, before.freeClusters + 1); } catch (e) { err = e; }
    expect(err).toMatchObject({ code: "ENOSPC", ino: f.ino });
    expect(f.reservedDataBlocks).toBe(6);
    expect(allocStats(fs).dirtyClusters).toBe(before.dirtyClusters + 6);
    // Releasing more than is held clamps, with a warning, as the kernel does.
    daReleaseSpace(fs, f, 100);
    expect(f.reservedDataBlocks).toBe(0);
    expect(allocStats(fs).dirtyClusters).toBe(before.dirtyClusters);
    expect(fs.warnings.some((w) => w.includes("ext4_da_release_space"))).toBe(true);
    fs.iput(f);
    vol.unmount();
  });

  it("esRemoveExtent drops delayed blocks from the tree and releases exactly their reservation", () => {
    const { vol, fs } = image({ features: "^has_journal" });
    const f = newFile(fs);
    const base = allocStats(fs).dirtyClusters;
    daReserveSpace(fs, f, 20);
    f.es.insert(100, 20, 0, ES.DELAYED);
    esRemoveExtent(fs, f, 90, 15); // delayed 100..104
    expect(f.delayedBlocks).toBe(15);
    expect(f.reservedDataBlocks).toBe(15);
    esRemoveExtent(fs, f, 110, 5); // a hole in the middle
    expect(f.delayedBlocks).toBe(10);
    expect(f.reservedDataBlocks).toBe(10);
    esRemoveExtent(fs, f, 0, 0x100000000); // truncate to 0
    expect(f.delayedBlocks).toBe(0);
    expect(f.reservedDataBlocks).toBe(0);
    expect(allocStats(fs).dirtyClusters).toBe(base);
    fs.iput(f);
    vol.unmount();
  });

  it("bigalloc: one reservation per cluster, released when its last delayed block goes, consumed when allocated", () => {
    const { vol, fs } = image({ features: "^has_journal,bigalloc", blockSize: 1024, clusterSize: 16384 });
    const ratio = fs.sb.clusterSize / fs.sb.blockSize;
    expect(ratio).toBe(16);
    const f = newFile(fs);
    const base = allocStats(fs).dirtyClusters;
    // Blocks 8..40 touch clusters 0, 1 and 2.
    const want = daClustersToReserve(fs, f, 8, 33);
    expect(want).toEqual([0, 1, 2]);
    daReserveSpace(fs, f, want.length);
    daAddClusters(f, want);
    f.es.insert(8, 33, 0, ES.DELAYED);
    // More delayed blocks in clusters that already hold a reservation need none.
    expect(daClustersToReserve(fs, f, 0, 8)).toEqual([]);
    expect(daClustersToReserve(fs, f, 41, 7)).toEqual([]);
    expect(daClustersToReserve(fs, f, 41, 8)).toEqual([3]);
    // Removing part of cluster 1 keeps its reservation; removing the rest releases it.
    esRemoveExtent(fs, f, 16, 8);
    expect(f.reservedDataBlocks).toBe(3);
    esRemoveExtent(fs, f, 24, 8);
    expect(f.reservedDataBlocks).toBe(2);
    // Cluster 0 allocated (delayed blocks 8..15 mapped): its reservation is consumed.
    f.es.insert(8, 8, 5000, ES.WRITTEN);
    daAllocated(fs, f, 8, 8, 8);
    expect(f.reservedDataBlocks).toBe(1);
    expect(allocStats(fs).dirtyClusters).toBe(base + 1);
    esRemoveExtent(fs, f, 0, 0x100000000);
    expect(f.reservedDataBlocks).toBe(0);
    expect(allocStats(fs).dirtyClusters).toBe(base);
    fs.iput(f);
    vol.unmount();
  });

  // Found by fsx: the release walked every cluster of the range, and truncate's range runs to
  // block 2^32 (a billion clusters at 4k blocks, 16k clusters: minutes in one truncate).
  it("bigalloc: a truncate below delayed blocks releases their reservations without walking the file's whole reach", () => {
    const { vol, fs } = image({ features: "bigalloc", blockSize: 4096, clusterSize: 16384 });
    const base = allocStats(fs).dirtyClusters;
    const fd = vol.openSync("/t", "w+");
    vol.writeSync(fd, new Uint8Array(65033).fill(7), 0, 65033, 1081342);
    const f = fs.iget(Number(vol.fstatSync(fd).ino));
    expect(f.reservedDataBlocks).toBe(5);
    vol.ftruncateSync(fd, 1053431);
    expect(f.reservedDataBlocks).toBe(0);
    expect(allocStats(fs).dirtyClusters).toBe(base);
    fs.iput(f);
    vol.closeSync(fd);
    vol.unmount();
  }, 10_000);
});

describe("truncateInodePages", () => {
  it("drops whole folios (dirty ones uncounted), zeroes the partial edge and calls the invalidate hook", () => {
    const { vol, fs } = image({ features: "^has_journal" });
    const f = newFile(fs);
    const cache = fs.cache;
    const id = cache.mappingOf(f);
    for (let i = 0; i < 8; i++) {
      const s = cache.create(id, i, 0);
      cache.bytes(s).fill(0xaa);
      cache.setUptodate(s, 0, cache.blocks(s));
      cache.markDirty(s);
    }
    f.dirtyFolios = 8;
    const calls: [number, number, number][] = [];
    setInvalidateFolioHook(cache, (slot, off, len) => calls.push([cache.index(slot), off, len]));
    const dirtyBefore = cache.stats().dirtyBytes;
    // From the middle of page 2 up to the start of page 6.
    truncateInodePages(fs, f, 2 * PAGE_SIZE + 100, 6 * PAGE_SIZE);
    expect(cache.lookup(id, 2)).toBeGreaterThanOrEqual(0);
    for (const p of [3, 4, 5]) expect(cache.lookup(id, p)).toBe(-1);
    expect(cache.lookup(id, 6)).toBeGreaterThanOrEqual(0);
    const edge = cache.bytes(cache.lookup(id, 2));
    expect(edge[99]).toBe(0xaa);
    expect(edge.subarray(100).every((b) => b === 0)).toBe(true);
    expect(cache.stats().dirtyBytes).toBe(dirtyBefore - 3 * PAGE_SIZE);
    expect(f.dirtyFolios).toBe(5);
    expect(calls).toEqual([[2, 100, PAGE_SIZE - 100], [3, 0, PAGE_SIZE], [4, 0, PAGE_SIZE], [5, 0, PAGE_SIZE]]);
    // To the end, from a block boundary: the edge folio's blocks wholly past `from` are clean.
    truncateInodePages(fs, f, 0);
    expect(cache.mappingCounts(id).folios).toBe(0);
    expect(cache.findFolio(id, 0, TAG.DIRTY)).toBe(-1);
    expect(f.dirtyFolios).toBe(0);
    setInvalidateFolioHook(cache, undefined);
    fs.iput(f);
    vol.unmount();
  });
});
