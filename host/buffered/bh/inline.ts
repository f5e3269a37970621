// Inline data on the bh write path: a write that fits stays in the inode
// (host/fs/inline-write.ts), one that does not first moves the inline bytes
// into block 0 (ext4_convert_inline_data_to_extent) and then goes on as any
// write. fallocate and a truncate past the inline size convert the same way
// (ext4_convert_inline_data).
//
// The conversion is one handle: the inline data is destroyed, block 0 is
// allocated and the bytes go into folio 0 as a written block, with the
// commit ordered after them (data=ordered) or the block journalled
// (data=journal). So the transaction that drops the inline copy never
// commits before the block copy is on disk: the kernel's delalloc path gets
// that by destroying the inline data only at writeback, its
// ext4_convert_inline_data by journalling the block. (Without ordering,
// data=writeback or no journal, block 0 is unwritten until written, as the
// kernel's non-delalloc conversion with dioread_nolock does.)

import { Ext4Error } from "../../errors.js";
import type { Handle } from "../../journal/handle.js";
import { ES } from "../../fs/extents-status.js";
import type { Ext4Inode } from "../../fs/inode.js";
import { clearMayInlineData, destroyInlineData, hasInlineData, inlineSize, mayInlineData, restoreInlineData, tryWriteInline } from "../../fs/inline-write.js";
import { ext4MapBlocks, GET_BLOCKS, MAP } from "../../fs/map-blocks.js";
import { shouldRetryAlloc } from "../../fs/mballoc.js";
import { writepageTransBlocks } from "../../fs/truncate.js";
import { XATTR_SET_CREDITS } from "../../fs/xattr-write.js";
import { BH } from "./buffer-head.js";
import type { BhState } from "./state.js";

/**
 * write_begin's inline step (ext4_generic_write_inline_data): true when the
 * write went into the inode (all of src); false when the caller writes it
 * through the folios (the file was converted, or never was inline).
 */
export function bhWriteInline(st: BhState, inode: Ext4Inode, pos: number, src: Uint8Array): boolean {
  if (!mayInlineData(inode)) return false;
  if (tryWriteInline(st.fs, inode, pos, src)) return true;
  bhConvertInlineData(st, inode);
  return false;
}

/**
 * ext4_convert_inline_data: an inline file becomes a block file (extents
 * where the filesystem has them), its inline bytes block 0's; a new file
 * that only might have been inline stays in blocks from now on. i_size does
 * not change. ENOSPC (after the commit retries) leaves the inline data as it was.
 */
export function bhConvertInlineData(st: BhState, inode: Ext4Inode): void {
  clearMayInlineData(inode);
  if (!hasInlineData(inode)) return;
  const fs = st.fs;
  for (let retries = 1; ; retries++) {
    const h = fs.startHandle(writepageTransBlocks(fs, inode) + XATTR_SET_CREDITS);
    let failed: unknown;
    try {
      convertInHandle(st, h, inode);
    } catch (e) {
      failed = e;
    } finally {
      h.stop();
    }
    if (!failed) return;
    if (failed instanceof Ext4Error && failed.code === "ENOSPC" && shouldRetryAlloc(fs, retries)) {
      fs.commit();
      continue;
    }
    throw failed;
  }
}

function convertInHandle(st: BhState, h: Handle, inode: Ext4Inode): void {
  const fs = st.fs;
  // What reads return today: the stored bytes up to i_size (the rest of block 0 reads as zeros).
  const keep = Math.min(inode.size, inlineSize(fs, inode));
  const stored = destroyInlineData(h, fs, inode);
  // An empty file has nothing to keep: no block (the kernel maps one of zeros, past EOF).
  if (keep === 0) return;
  const journalData = st.journalData(inode);
  const ordered = st.orderData(inode);
  const unwritten = !journalData && !ordered && st.dioreadNolock(inode);
  let pblk: number;
  let mflags: number;
  try {
    const m = ext4MapBlocks(h, fs, inode, { lblk: 0, len: 1 }, GET_BLOCKS.CREATE | (unwritten ? GET_BLOCKS.UNWRIT_EXT : 0));
    if (!(m.flags & (MAP.MAPPED | MAP.UNWRITTEN))) throw new Ext4Error("EIO", "block 0 of a converted inline file is not mapped", { ino: inode.ino });
    pblk = m.pblk;
    mflags = m.flags;
  } catch (e) {
    restoreInlineData(h, fs, inode, stored);
    throw e;
  }
  const isUnwritten = (mflags & MAP.UNWRITTEN) !== 0;
  inode.es.insert(0, 1, pblk, isUnwritten ? ES.UNWRITTEN : ES.WRITTEN);
  fillBlockZero(st, h, inode, stored.subarray(0, keep), pblk, isUnwritten, journalData);
  if (ordered && !isUnwritten) h.addOrderedInode?.(inode.ino);
}

/**
 * Folio 0's first block: the bytes, zeros after them, uptodate and mapped to
 * pblk; dirty for writeback, or (journalled data) copied into the journal as
 * ext4_journalled_write_end does, the folio left clean.
 */
function fillBlockZero(st: BhState, h: Handle, inode: Ext4Inode, bytes: Uint8Array, pblk: number, unwritten: boolean, journalData: boolean): void {
  const fs = st.fs;
  const cache = fs.cache;
  const bs = fs.sb.blockSize;
  const id = cache.mappingOf(inode);
  let slot = cache.lookup(id, 0);
  if (slot < 0) slot = cache.create(id, 0, cache.minOrder);
  cache.x.folioPin(slot);
  try {
    const at = cache.addr(slot);
    fs.wasm.x.zeroRange(at, bs);
    fs.wasm.u8.set(bytes, at);
    cache.setUptodate(slot, 0, 1);
    const bh = st.buffers.ofFolio(slot)[0];
    bh.clear(BH.Delay | BH.New | BH.Unwritten);
    bh.set(BH.Mapped | BH.Uptodate | (unwritten ? BH.Unwritten : 0));
    bh.blocknr = pblk;
    if (!journalData) {
      cache.markDirty(slot, 0, 1);
      bh.set(BH.Dirty);
      return;
    }
    const dbh = fs.bcache.getblk(pblk, "journalled data block");
    try {
      if (dbh.uptodate) h.getWriteAccess(dbh);
      else h.getCreateAccess(dbh);
      dbh.data.set(fs.wasm.u8.subarray(at, at + bs));
      h.dirtyMetadata(dbh);
    } finally {
      fs.bcache.brelse(dbh);
    }
    if (h.journaled) {
      inode.syncTid = h.tid;
      inode.datasyncTid = h.tid;
    }
  } finally {
    cache.x.folioUnpin(slot);
  }
}
