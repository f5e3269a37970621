// The bh buffered write (generic_perform_write with ext4's address space
// operations, fs/ext4/inode.c): per folio, write_begin gets the blocks the
// write touches (ext4_da_write_begin: delayed blocks with a reservation, so
// ENOSPC comes now, never at writeback; ext4_write_begin without delalloc or
// near ENOSPC: blocks allocated in a handle, unwritten with dioread_nolock),
// reads or zeroes what a partial block write leaves, then the copy, then
// write_end (i_size; i_disksize by the path's rule; the inode dirtied in a
// handle where the on-disk inode must change), then balance_dirty_pages.

import { Ext4Error } from "../../errors.js";
import { PAGE_SIZE } from "../../cache/folio-cache.js";
import { syncDirtyFolios } from "../../cache/truncate.js";
import { INODE_FLAGS } from "../../format/inode.js";
import type { Handle } from "../../journal/handle.js";
import { daAddClusters, daClustersToReserve, daReserveSpace, esRemoveExtent } from "../../fs/delalloc.js";
import { ES } from "../../fs/extents-status.js";
import { type Ext4Inode, updateInodeSize } from "../../fs/inode.js";
import { markInodeDirty } from "../../fs/inode-write.js";
import { ext4MapBlocks, ext4RemoveSpace, GET_BLOCKS, MAP } from "../../fs/map-blocks.js";
import { allocStats, shouldRetryAlloc } from "../../fs/mballoc.js";
import { ReadBio } from "../bio.js";
import { readaheadFolioOrder } from "../folio-order.js";
import { maxBytes, refuseEncrypted } from "../io.js";
import { BH, type BufferHead } from "./buffer-head.js";
import type { BhState } from "./state.js";
import { BK, bhWritepages, classify, mapCallCredits } from "./writepages.js";

export interface WriteOptions {
  /** RWF_DONTCACHE: new folios are dropped once written back, and writeback starts at once. */
  dontcache?: boolean;
}

/**
 * generic_perform_write: copies src to file bytes [pos, pos+src.length).
 * Returns the bytes written; a failure after some bytes (ENOSPC) ends the
 * write short, a failure before any throws.
 */
export function bhWrite(st: BhState, inode: Ext4Inode, pos: number, src: Uint8Array, opts: WriteOptions = {}): number {
  const fs = st.fs;
  if (fs.readOnly) throw new Ext4Error("EROFS", "read-only file system", { ino: inode.ino });
  if (inode.bufferedIomap) throw new Ext4Error("EOPNOTSUPP", "the iomap buffered write path is issue 7", { ino: inode.ino });
  if (inode.flags & INODE_FLAGS.ENCRYPT) refuseEncrypted(inode);
  // A verity file's data is sealed by its Merkle tree (the kernel's open for writing fails with EPERM).
  if (inode.flags & INODE_FLAGS.VERITY) throw new Ext4Error("EPERM", "verity files cannot be written", { ino: inode.ino });
  if (inode.flags & INODE_FLAGS.INLINE_DATA) throw new Ext4Error("EOPNOTSUPP", "writing inline-data files is not supported yet", { ino: inode.ino });
  if (!Number.isSafeInteger(pos) || pos < 0) throw new Ext4Error("EINVAL", `bad file position ${pos}`, { ino: inode.ino });
  if (src.length === 0) return 0;
  if (pos + src.length > maxBytes(fs, inode)) throw new Ext4Error("EFBIG", `write past the largest file size (${maxBytes(fs, inode)})`, { ino: inode.ino });
  fs.icache.assertCurrent(inode);
  const cache = fs.cache;
  const id = cache.mappingOf(inode);
  const bs = fs.sb.blockSize;
  const journalData = st.journalData(inode);
  let done = 0;
  while (done < src.length) {
    const p = pos + done;
    const index = Math.floor(p / PAGE_SIZE);
    let slot = cache.lookup(id, index);
    if (slot < 0) {
      // Large folios on this path as ext4 has them since 6.16 (the order fits the write; capped by the cache).
      // (Not for journalled data: each block is a journal buffer, and ext4 keeps such folios small.)
      slot = cache.create(id, index, journalData ? cache.minOrder : readaheadFolioOrder(cache, id, index, pos + src.length));
      if (opts.dontcache) cache.setDropbehind(slot);
    }
    cache.x.folioPin(slot);
    let n: number;
    try {
      const fStart = cache.index(slot) * PAGE_SIZE;
      const off = p - fStart;
      n = Math.min(src.length - done, cache.size(slot) - off);
      let h: Handle | undefined;
      const delayed = !journalData && st.delalloc && !nondaSwitch(st);
      try {
        if (delayed) daWriteBegin(st, inode, slot, off, off + n);
        else h = writeBegin(st, inode, slot, off, off + n, journalData);
      } catch (e) {
        if (done > 0 && e instanceof Ext4Error && e.code === "ENOSPC") break;
        throw e;
      }
      try {
        fs.wasm.u8.set(src.subarray(done, done + n), cache.addr(slot) + off);
        const b0 = Math.floor(off / bs);
        const b1 = Math.ceil((off + n) / bs);
        cache.setUptodate(slot, b0, b1 - b0);
        const bhs = st.buffers.ofFolio(slot);
        if (journalData) {
          journalFolioData(st, h!, slot, b0, b1, bhs);
        } else {
          cache.markDirty(slot, b0, b1 - b0);
          for (let b = b0; b < b1; b++) bhs[b].set(BH.Uptodate | BH.Dirty);
        }
        if (delayed) daWriteEnd(st, inode, slot, fStart + off + n);
        else writeEnd(st, inode, h!, fStart + off + n, journalData);
      } finally {
        h?.stop();
      }
    } finally {
      cache.x.folioUnpin(slot);
    }
    done += n;
    syncDirtyFolios(fs, inode);
    cache.balanceDirty();
  }
  if (opts.dontcache && done > 0) {
    // generic_write_sync for IOCB_DONTCACHE: writeback of what was written starts now; clean dropbehind folios go.
    bhWritepages(st, inode, Math.floor(pos / PAGE_SIZE), Math.ceil((pos + done) / PAGE_SIZE), { sync: false, canMap: true });
  }
  return done;
}

/**
 * ext4_nonda_switch: near ENOSPC delayed allocation gives way to allocation
 * at write time; first, with claims at half the free space, writeback starts.
 */
function nondaSwitch(st: BhState): boolean {
  const s = allocStats(st.fs);
  const free = s.freeClusters;
  const dirty = s.dirtyClusters;
  if (dirty > 0 && free < 2 * dirty) writebackAll(st);
  const after = allocStats(st.fs);
  return 2 * after.freeClusters < 3 * after.dirtyClusters;
}

/** try_to_writeback_inodes_sb: every dirty data mapping written back once. */
export function writebackAll(st: BhState): void {
  for (const id of st.fs.cache.dirtyMappings()) {
    const inode = st.inodeOfMapping(id);
    if (inode && !inode.bufferedIomap) bhWritepages(st, inode, 0, Number.MAX_SAFE_INTEGER, { sync: false, canMap: true });
  }
}

/**
 * ext4_da_write_begin for bytes [from, to) of folio `slot`: holes become
 * delayed blocks, reserved first (one claim for the folio's holes; bigalloc:
 * per new cluster); partial blocks are read (mapped) or zeroed (new).
 */
function daWriteBegin(st: BhState, inode: Ext4Inode, slot: number, from: number, to: number): void {
  const fs = st.fs;
  const cache = fs.cache;
  const bs = fs.sb.blockSize;
  const firstLblk = (cache.index(slot) * PAGE_SIZE) / bs;
  const b0 = Math.floor(from / bs);
  const b1 = Math.ceil(to / bs);
  const bhs = st.buffers.ofFolio(slot);
  const holes: { lblk: number; len: number }[] = [];
  for (let b = b0; b < b1; ) {
    const r = classify(fs, inode, firstLblk + b, b1 - b);
    for (let i = b; i < b + r.len; i++) mapBuffer(bhs[i], r, firstLblk + i);
    if (r.kind === BK.Hole) holes.push({ lblk: r.lblk, len: r.len });
    b += r.len;
  }
  if (holes.length) {
    let clusters: number[] = [];
    let need = 0;
    if (fs.sb.clusterSize === bs) {
      for (const hl of holes) need += hl.len;
    } else {
      const set = new Set<number>();
      for (const hl of holes) for (const c of daClustersToReserve(fs, inode, hl.lblk, hl.len)) set.add(c);
      clusters = [...set];
      need = clusters.length;
    }
    daReserveSpace(fs, inode, need); // ENOSPC here, after its commit retries
    daAddClusters(inode, clusters);
    for (const hl of holes) {
      inode.es.insert(hl.lblk, hl.len, 0, ES.DELAYED);
      for (let i = 0; i < hl.len; i++) bhs[hl.lblk - firstLblk + i].set(BH.Mapped | BH.New | BH.Delay);
    }
  }
  try {
    prepareEdges(st, slot, from, to, bhs);
  } catch (e) {
    // The folio never got the data: the delayed blocks made for it go, with their reservation.
    for (const hl of holes) esRemoveExtent(fs, inode, hl.lblk, hl.len);
    throw e;
  }
}

/** map_bh for what get_block found. */
function mapBuffer(bh: BufferHead, r: { kind: BK; lblk: number; pblk: number }, lblk: number): void {
  bh.clear(BH.Mapped | BH.New | BH.Delay | BH.Unwritten);
  if (r.kind === BK.Mapped) { bh.set(BH.Mapped); bh.blocknr = r.pblk + (lblk - r.lblk); }
  else if (r.kind === BK.Unwritten) { bh.set(BH.Mapped | BH.Unwritten | BH.New); bh.blocknr = r.pblk + (lblk - r.lblk); }
  else if (r.kind === BK.Delayed) bh.set(BH.Mapped | BH.Delay);
}

/**
 * __block_write_begin's edges: a block the write covers only in part and
 * that is not uptodate is read when it holds data on disk (mapped, written),
 * else zeroed (a hole, new delayed or unwritten block: it reads as zeros).
 */
function prepareEdges(st: BhState, slot: number, from: number, to: number, bhs: BufferHead[], journalData = false): void {
  const fs = st.fs;
  const cache = fs.cache;
  const bs = fs.sb.blockSize;
  const edges = new Set<number>();
  if (from % bs) edges.add(Math.floor(from / bs));
  if (to % bs) edges.add(Math.floor(to / bs));
  const bio = new ReadBio(fs);
  try {
    for (const b of edges) {
      if (cache.isUptodate(slot, b, 1)) continue;
      const bh = bhs[b];
      // A new or unwritten block reads as zeros: a journal buffer of it holds what it had before (a zero range, a punch).
      const jbh = journalData && bh.has(BH.Mapped) && !bh.has(BH.New) && !bh.has(BH.Unwritten) ? fs.bcache.peek(bh.blocknr) : undefined;
      if (jbh && jbh.uptodate) {
        // Journalled data not yet checkpointed: the journal's buffer is newer than the disk.
        fs.wasm.u8.set(jbh.data, cache.addr(slot) + b * bs);
        cache.setUptodate(slot, b, 1);
      } else if (bh.has(BH.Mapped) && !bh.has(BH.New) && !bh.has(BH.Delay) && !bh.has(BH.Unwritten)) {
        bio.add(bh.blocknr * bs, slot, b, 1);
        bio.submit();
      } else {
        fs.wasm.x.zeroRange(cache.addr(slot) + b * bs, bs);
        cache.setUptodate(slot, b, 1);
      }
      bh.set(BH.Uptodate);
    }
  } finally {
    if (bio.pending) bio.abandon();
  }
}

/**
 * ext4_da_do_write_end: i_size grows; i_disksize only when the last block
 * written is mapped and written on disk (ext4_da_should_update_i_disksize),
 * else writeback moves it once the delayed blocks are allocated.
 */
function daWriteEnd(st: BhState, inode: Ext4Inode, slot: number, end: number): void {
  const fs = st.fs;
  if (end > inode.size) inode.size = end;
  if (end <= inode.disksize) return;
  const bs = fs.sb.blockSize;
  const bh = st.buffers.ofFolio(slot)[Math.floor((end - 1 - fs.cache.index(slot) * PAGE_SIZE) / bs)];
  if (!bh.has(BH.Mapped) || bh.has(BH.Delay) || bh.has(BH.Unwritten)) return;
  const h = fs.startHandle(2);
  try {
    inode.disksize = end;
    markInodeDirty(h, fs, inode);
  } finally {
    h.stop();
  }
}

/**
 * ext4_write_begin (no delalloc, or ext4_nonda_switch): a handle sized for the
 * folio's blocks, and holes allocated in it (unwritten with dioread_nolock,
 * else written, and data=ordered told so). Delayed blocks stay delayed. On
 * ENOSPC the handle goes and, while freed blocks wait for a commit, the
 * commit is forced and the allocation tried again. Returns the open handle;
 * write_end stops it.
 */
function writeBegin(st: BhState, inode: Ext4Inode, slot: number, from: number, to: number, journalData = false): Handle {
  const fs = st.fs;
  const cache = fs.cache;
  const bs = fs.sb.blockSize;
  const firstLblk = (cache.index(slot) * PAGE_SIZE) / bs;
  const b0 = Math.floor(from / bs);
  const b1 = Math.ceil(to / bs);
  const bhs = st.buffers.ofFolio(slot);
  const unwritten = st.dioreadNolock(inode);
  const perCall = mapCallCredits(fs, inode);
  for (let retries = 1; ; retries++) {
    // Journalled data: every block written is a journal buffer too (ext4_writepage_trans_blocks counts them).
    const h = fs.startHandle(perCall * Math.min(b1 - b0, 8) + 4 + (journalData ? b1 - b0 : 0));
    const allocated: { lblk: number; len: number }[] = [];
    try {
      for (let b = b0; b < b1; ) {
        const r = classify(fs, inode, firstLblk + b, b1 - b);
        if (r.kind === BK.Hole || (r.kind === BK.Unwritten && !unwritten)) {
          // A folio of many small holes (fragmented free space) may outgrow the handle: more credits, or a fresh handle.
          if (h.credits < perCall && !h.extend(perCall)) h.restart(perCall * 8);
          const flags = GET_BLOCKS.CREATE | (unwritten ? GET_BLOCKS.UNWRIT_EXT : 0);
          const m = ext4MapBlocks(h, fs, inode, { lblk: r.lblk, len: r.len }, flags);
          const n = Math.min(m.len, r.len);
          if (r.kind === BK.Hole) allocated.push({ lblk: r.lblk, len: n });
          inode.es.insert(r.lblk, n, m.pblk, m.flags & MAP.UNWRITTEN ? ES.UNWRITTEN : ES.WRITTEN);
          if (m.flags & MAP.NEW && !(m.flags & MAP.UNWRITTEN) && st.orderData(inode)) h.addOrderedInode?.(inode.ino);
          for (let i = 0; i < n; i++) {
            const bh = bhs[b + i];
            bh.clear(BH.Delay);
            bh.set(BH.Mapped | BH.New | (m.flags & MAP.UNWRITTEN ? BH.Unwritten : 0));
            bh.blocknr = m.pblk + i;
          }
          b += n;
          continue;
        }
        for (let i = b; i < b + r.len; i++) mapBuffer(bhs[i], r, firstLblk + i);
        b += r.len;
      }
      prepareEdges(st, slot, from, to, bhs, journalData);
      return h;
    } catch (e) {
      try {
        // ext4_truncate_failed_write: the blocks this attempt allocated go again (the folio never got their data).
        for (const a of allocated) {
          ext4RemoveSpace(h, fs, inode, a.lblk, a.lblk + a.len - 1);
          inode.es.remove(a.lblk, a.len);
        }
        if (allocated.length) markInodeDirty(h, fs, inode);
      } finally {
        h.stop();
      }
      if (e instanceof Ext4Error && e.code === "ENOSPC" && shouldRetryAlloc(fs, retries)) {
        fs.commit();
        continue;
      }
      if (e instanceof Ext4Error && e.code === "ENOSPC") throw new Ext4Error("ENOSPC", e.message, { ino: inode.ino });
      throw e;
    }
  }
}

/**
 * ext4_write_end / ext4_journalled_write_end: i_size and i_disksize together
 * (the blocks exist), the inode dirtied in the write's handle; journalled data
 * makes fsync and fdatasync wait for this transaction (ext4_update_inode_fsync_trans).
 */
function writeEnd(st: BhState, inode: Ext4Inode, h: Handle, end: number, journalData: boolean): void {
  if (updateInodeSize(inode, end)) markInodeDirty(h, st.fs, inode);
  if (journalData && h.journaled) {
    inode.syncTid = h.tid;
    inode.datasyncTid = h.tid;
  }
}

/**
 * ext4_journalled_write_end's data half (write_end_fn + ext4_dirty_journalled_data):
 * each block written goes into the journal as a buffer of the device mapping,
 * its bytes copied from the folio; the checkpoint writes it home. The folio
 * stays clean (writeback never writes it), and the read path prefers such a
 * buffer to the disk while it is cached.
 */
export function journalFolioData(st: BhState, h: Handle, slot: number, b0: number, b1: number, bhs: BufferHead[]): void {
  const fs = st.fs;
  const cache = fs.cache;
  const bs = fs.sb.blockSize;
  for (let b = b0; b < b1; b++) {
    const pblk = bhs[b].blocknr;
    if (!bhs[b].has(BH.Mapped) || pblk === 0) throw new Ext4Error("EIO", `journalled data block ${b} of a folio is not mapped`);
    const dbh = fs.bcache.getblk(pblk, "journalled data block");
    try {
      if (dbh.uptodate) h.getWriteAccess(dbh);
      else h.getCreateAccess(dbh);
      const at = cache.addr(slot) + b * bs;
      dbh.data.set(fs.wasm.u8.subarray(at, at + bs));
      h.dirtyMetadata(dbh);
    } finally {
      fs.bcache.brelse(dbh);
    }
    bhs[b].set(BH.Uptodate);
    bhs[b].clear(BH.Dirty | BH.New);
  }
}
