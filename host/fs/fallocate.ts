// The block-level parts of ext4_fallocate (fs/ext4/extents.c, inode.c):
// preallocation as unwritten extents, punching a hole, zeroing a range by
// turning it unwritten, collapsing and inserting a range by shifting
// extents. Each runs its own handles with credits sized as the kernel sizes
// them. The page cache (writeback, invalidation, zeroing partial blocks) is
// host/vfs/fallocate.ts's business, done before or after these.

import { Ext4Error } from "../errors.js";
import { INODE_FLAGS } from "../format/inode.js";
import { leafAt } from "../format/extent.js";
import type { Handle } from "../journal/handle.js";
import { esRemoveExtent } from "./delalloc.js";
import { findExtent, pathNode, releasePath } from "./extents.js";
import { EXT_MAX_BLOCKS, EXT_UNWRITTEN_MAX_LEN, extRemoveSpace, extShiftExtents, splitExtentAt } from "./extents-write.js";
import { type Ext4Inode, updateInodeSize } from "./inode.js";
import { markInodeDirty } from "./inode-write.js";
import { ext4MapBlocks, ext4RemoveSpace, GET_BLOCKS } from "./map-blocks.js";
import { shouldRetryAlloc } from "./mballoc.js";
import type { Ext4 } from "./super.js";
import { blocksForTruncate, chunkTransBlocks, writepageTransBlocks } from "./truncate.js";
import { currentTime } from "./xattr-write.js";

const isExtents = (inode: Ext4Inode) => (inode.flags & INODE_FLAGS.EXTENTS) !== 0;

function notExtents(inode: Ext4Inode): Ext4Error {
  return new Ext4Error("EOPNOTSUPP", "operation not supported on a block-mapped (non-extent) file", { ino: inode.ino });
}

/** IS_SYNC: the handle's transaction committed before the call returns (ext4_handle_sync). */
function syncIfNeeded(fs: Ext4, inode: Ext4Inode, tid: number): void {
  if (inode.flags & INODE_FLAGS.SYNC) fs.syncTid(tid);
}

/**
 * ext4_alloc_file_blocks: maps logical [lblk, lblk+len) with `flags`
 * (CREATE_UNWRIT_EXT, plus CONVERT_UNWRITTEN for zero range), one extent's
 * worth per handle; with `newSize`, i_size and i_disksize follow the
 * allocation up to it (and mtime with them). ENOSPC is retried after a
 * commit frees blocks, as ext4_should_retry_alloc allows.
 */
export function allocFileBlocks(fs: Ext4, inode: Ext4Inode, lblk: number, len: number, newSize: number | undefined, flags: number): void {
  if (!isExtents(inode)) throw notExtents(inode);
  if (len <= 0) return;
  // A request that fits one extent is not normalized, so it is not split into several.
  if (len <= EXT_UNWRITTEN_MAX_LEN) flags |= GET_BLOCKS.NO_NORMALIZE;
  const bs = fs.sb.blockSize;
  let retries = 0;
  while (len > 0) {
    const h = fs.startHandle(chunkTransBlocks(fs, inode, len));
    let done = 0;
    try {
      done = ext4MapBlocks(h, fs, inode, { lblk, len }, flags).len;
    } catch (e) {
      markInodeDirty(h, fs, inode);
      h.stop();
      if (e instanceof Ext4Error && e.code === "ENOSPC" && shouldRetryAlloc(fs, retries++)) {
        fs.commit();
        continue;
      }
      throw e;
    }
    try {
      retries = 0;
      lblk += done;
      len -= done;
      inode.ctime = currentTime();
      if (newSize !== undefined) {
        const epos = Math.min(lblk * bs, newSize);
        if (updateInodeSize(inode, epos)) inode.mtime = inode.ctime;
      }
      markInodeDirty(h, fs, inode);
      // The allocation itself is what fdatasync must wait for (ext4_update_inode_fsync_trans).
      if (h.journaled) inode.datasyncTid = h.tid;
    } finally {
      h.stop();
    }
  }
}

/**
 * ext4_update_disksize_before_punch: a range reaching i_size of a file whose
 * i_disksize lags (delayed data) gets i_disksize = i_size first, so the
 * blocks the punch leaves past the old i_disksize are not past EOF on disk.
 */
export function updateDisksizeBeforePunch(fs: Ext4, inode: Ext4Inode, offset: number, len: number): void {
  const size = inode.size;
  if (offset > size || offset + len < size) return;
  if (inode.disksize >= size) return;
  const h = fs.startHandle(1);
  try {
    inode.disksize = size;
    markInodeDirty(h, fs, inode);
  } finally {
    h.stop();
  }
}

/**
 * The block part of ext4_punch_hole: the whole blocks of [offset, end) (end
 * already clipped by the caller) are unmapped and freed, extent or block-mapped
 * alike, with their delayed extents; mtime and ctime become now.
 */
export function punchHole(fs: Ext4, inode: Ext4Inode, offset: number, end: number): void {
  const bs = fs.sb.blockSize;
  const credits = isExtents(inode) ? writepageTransBlocks(fs, inode) : blocksForTruncate(fs, inode);
  const h = fs.startHandle(credits);
  try {
    const first = Math.ceil(offset / bs);
    const stop = Math.floor(end / bs);
    if (stop > first) {
      esRemoveExtent(fs, inode, first, stop - first);
      ext4RemoveSpace(h, fs, inode, first, stop - 1);
    }
    fileModified(h, fs, inode);
  } finally {
    h.stop();
  }
  syncIfNeeded(fs, inode, inode.syncTid);
}

/** mtime and ctime now. */
function stampTimes(inode: Ext4Inode): void {
  const now = currentTime();
  inode.mtime = now;
  inode.ctime = now;
}

/** The range changed: times stamped, the inode written in the handle, fdatasync to wait for its transaction. */
function fileModified(h: Handle, fs: Ext4, inode: Ext4Inode): void {
  stampTimes(inode);
  markInodeDirty(h, fs, inode);
  if (h.journaled) inode.datasyncTid = h.tid;
}

/**
 * The block part of ext4_collapse_range (the caller has written back and
 * dropped the page cache from offset on): blocks [start, stop) go, the
 * extents after them move left by stop - start, i_size and i_disksize drop
 * by the range's length. Offset and length are cluster aligned and the
 * range ends before EOF (the caller's EINVAL checks).
 */
export function collapseRange(fs: Ext4, inode: Ext4Inode, offset: number, len: number): void {
  if (!isExtents(inode)) throw notExtents(inode);
  const bs = fs.sb.blockSize;
  const start = offset / bs;
  const stop = (offset + len) / bs;
  const h = fs.startHandle(writepageTransBlocks(fs, inode));
  try {
    esRemoveExtent(fs, inode, start, EXT_MAX_BLOCKS + 1 - start);
    extRemoveSpace(h, fs, inode, start, stop - 1);
    extShiftExtents(h, fs, inode, stop, stop - start, "left");
    inode.size -= len;
    inode.disksize = inode.size;
    fileModified(h, fs, inode);
  } finally {
    h.stop();
  }
  syncIfNeeded(fs, inode, inode.syncTid);
}

/**
 * The block part of ext4_insert_range: i_size and i_disksize grow by `len`
 * first (a failed shift loses nothing), the extent holding the offset is
 * split there, and every extent from it on moves right by len / bs blocks,
 * leaving a hole. The caller checked alignment, EFBIG and offset < i_size.
 */
export function insertRange(fs: Ext4, inode: Ext4Inode, offset: number, len: number): void {
  if (!isExtents(inode)) throw notExtents(inode);
  const bs = fs.sb.blockSize;
  const at = offset / bs;
  const shift = len / bs;
  const h = fs.startHandle(writepageTransBlocks(fs, inode));
  try {
    inode.size += len;
    inode.disksize += len;
    stampTimes(inode);
    markInodeDirty(h, fs, inode);
    let exStart = 0;
    const p = findExtent(fs, inode, at);
    try {
      const lv = p[p.length - 1];
      if (lv.pos >= 0) exStart = leafAt(pathNode(inode, lv), lv.pos).lblk;
    } finally {
      releasePath(fs, p);
    }
    // Unwritten extents split into two unwritten halves: splitExtentAt keeps the kind.
    splitExtentAt(h, fs, inode, at, { nofail: true });
    esRemoveExtent(fs, inode, at, EXT_MAX_BLOCKS + 1 - at);
    extShiftExtents(h, fs, inode, Math.max(exStart, at), shift, "right");
    markInodeDirty(h, fs, inode);
    if (h.journaled) inode.datasyncTid = h.tid;
  } finally {
    h.stop();
  }
  syncIfNeeded(fs, inode, inode.syncTid);
}
