// The bh path's range writeback, fsync, partial-block zeroing and forced
// delayed allocation: filemap_fdatawrite_range / filemap_write_and_wait_range,
// ext4_sync_file, ext4_block_zero_page_range, ext4_alloc_da_blocks.

import { Ext4Error } from "../../errors.js";
import { MAX_INDEX, PAGE_SIZE } from "../../cache/folio-cache.js";
import { syncDirtyFolios } from "../../cache/truncate.js";
import type { Ext4Inode } from "../../fs/inode.js";
import { ReadBio } from "../bio.js";
import type { BhState } from "./state.js";
import { BH } from "./buffer-head.js";
import { journalFolioData } from "./write.js";
import { BK, bhWritepages, classify } from "./writepages.js";

function pageRange(from: number, to: number): [number, number] {
  const start = Math.floor(Math.max(0, from) / PAGE_SIZE);
  const end = to === Infinity || to >= Number.MAX_SAFE_INTEGER ? MAX_INDEX : Math.ceil(to / PAGE_SIZE);
  return [start, end];
}

/**
 * filemap_fdatawrite_range over bytes [from, to); with `sync` an integrity
 * pass that then waits (all I/O here completes in the call) and throws an
 * error recorded on the mapping since it was last reported.
 */
export function bhWriteback(st: BhState, inode: Ext4Inode, from: number, to: number, sync: boolean): void {
  if (st.fs.readOnly || inode.bufferedIomap) return;
  const [start, end] = pageRange(from, to);
  if (end <= start) return;
  bhWritepages(st, inode, start, end, { sync, canMap: true });
  if (!sync) return;
  const code = st.fs.cache.waitWriteback(st.fs.cache.mappingOf(inode), start, end);
  if (code) throw new Ext4Error(code, `writeback of inode ${inode.ino} failed`, { ino: inode.ino });
}

/**
 * ext4_sync_file for a regular file: its data written and waited on (an
 * error from this or an earlier asynchronous writeback comes out here, once),
 * then the transaction that last changed the inode committed (fdatasync: the
 * one that last changed what reading the data needs), or the device flushed
 * when that has committed already; without a journal, dirty metadata is
 * written home and the device flushed.
 */
export function bhFsync(st: BhState, inode: Ext4Inode, datasync: boolean): void {
  const fs = st.fs;
  if (fs.readOnly) return;
  bhWriteback(st, inode, 0, Infinity, true);
  fs.syncTid(datasync ? inode.datasyncTid : inode.syncTid);
}

/**
 * ext4_block_zero_page_range: bytes [from, to) zeroed in the cache where the
 * blocks hold data (mapped and written, or delayed); holes read as zeros
 * already and are left alone, and so are unwritten blocks unless the cache
 * holds a write into them that is not yet written back. A block not cached is
 * read first. The zeroed blocks are dirty; with data=ordered those on disk
 * are written back at once, so the zeros reach home before the transaction
 * that follows (a truncate) commits.
 */
export function bhZeroRange(st: BhState, inode: Ext4Inode, from: number, to: number): void {
  const fs = st.fs;
  if (fs.readOnly) throw new Ext4Error("EROFS", "read-only file system", { ino: inode.ino });
  if (!(to > from)) return;
  const cache = fs.cache;
  const bs = fs.sb.blockSize;
  const id = cache.mappingOf(inode);
  let onDisk = false;
  const journalData = st.journalData(inode);
  for (let lblk = Math.floor(from / bs); lblk * bs < to; ) {
    const r = classify(fs, inode, lblk, Math.ceil(to / bs) - lblk);
    if (r.kind === BK.Unwritten) {
      // Unwritten on disk, but a write into it may wait in the cache (not yet written back): zero that copy.
      for (let b = lblk; b < lblk + r.len; b++) {
        const slot = cache.lookup(id, Math.floor((b * bs) / PAGE_SIZE));
        if (slot < 0) continue;
        const fStart = cache.index(slot) * PAGE_SIZE;
        const fb = (b * bs - fStart) / bs;
        if (!cache.isUptodate(slot, fb, 1)) continue;
        const zFrom = Math.max(from, b * bs);
        fs.wasm.x.zeroRange(cache.addr(slot) + (zFrom - fStart), Math.min(to, (b + 1) * bs) - zFrom);
        cache.markDirty(slot, fb, 1);
      }
      lblk += r.len;
      continue;
    }
    if (r.kind !== BK.Mapped && r.kind !== BK.Delayed) { lblk += r.len; continue; }
    for (let b = lblk; b < lblk + r.len; b++) {
      const zFrom = Math.max(from, b * bs);
      const zTo = Math.min(to, (b + 1) * bs);
      const index = Math.floor((b * bs) / PAGE_SIZE);
      let slot = cache.lookup(id, index);
      if (slot < 0) slot = cache.create(id, index, cache.minOrder);
      cache.x.folioPin(slot);
      try {
        const fStart = cache.index(slot) * PAGE_SIZE;
        const fb = (b * bs - fStart) / bs;
        const jbh = journalData && r.kind === BK.Mapped ? fs.bcache.peek(r.pblk + (b - r.lblk)) : undefined;
        if (!cache.isUptodate(slot, fb, 1) && jbh && jbh.uptodate) {
          fs.wasm.u8.set(jbh.data, cache.addr(slot) + fb * bs);
          cache.setUptodate(slot, fb, 1);
        }
        if (!cache.isUptodate(slot, fb, 1)) {
          if (r.kind !== BK.Mapped) throw new Ext4Error("EIO", `delayed block ${b} is not in the cache`, { ino: inode.ino });
          const bio = new ReadBio(fs);
          bio.add((r.pblk + (b - r.lblk)) * bs, slot, fb, 1);
          bio.submit();
        }
        fs.wasm.x.zeroRange(cache.addr(slot) + (zFrom - fStart), zTo - zFrom);
        if (journalData && r.kind === BK.Mapped) {
          // Journalled data: the zeroed block goes through the journal like any write of it.
          const h = fs.startHandle(2);
          try {
            const bhs = st.buffers.ofFolio(slot);
            bhs[fb].blocknr = r.pblk + (b - r.lblk);
            bhs[fb].set(BH.Mapped);
            journalFolioData(st, h, slot, fb, fb + 1, bhs);
            if (h.journaled) { inode.syncTid = h.tid; inode.datasyncTid = h.tid; }
          } finally {
            h.stop();
          }
        } else {
          cache.markDirty(slot, fb, 1);
        }
      } finally {
        cache.x.folioUnpin(slot);
      }
      if (r.kind === BK.Mapped) onDisk = true;
    }
    lblk += r.len;
  }
  syncDirtyFolios(fs, inode);
  if (onDisk && !journalData && st.orderData(inode)) {
    const [start, end] = pageRange(from, to);
    bhWritepages(st, inode, start, end, { sync: true, canMap: false });
  }
}

/** ext4_alloc_da_blocks: with delayed blocks, filemap_flush (allocation forced, no wait needed here). */
export function bhAllocDaBlocks(st: BhState, inode: Ext4Inode): void {
  if (st.fs.readOnly || inode.delayedBlocks === 0) return;
  bhWritepages(st, inode, 0, MAX_INDEX, { sync: false, canMap: true });
}
