// Writing inline data (fs/ext4/inline.c): a regular file's bytes kept in
// i_block (60 bytes) and the in-inode "system.data" xattr while a write fits
// there (ext4_prepare_inline_data, ext4_write_inline_data_end), and the
// inode-side half of the conversion to blocks (ext4_destroy_inline_data:
// the xattr goes, i_block becomes an empty extent root). The block side of
// the conversion (the bytes into block 0 through the folio cache) is the
// buffered path's: host/buffered/bh/inline.ts.

import { setU16, u32 } from "../format/bytes.js";
import { INCOMPAT } from "../format/features.js";
import { GOOD_OLD_INODE_SIZE, INODE_FLAGS, isReg, type Inode } from "../format/inode.js";
import { parseXattrRecords, XATTR_MAGIC, xattrSize, xattrSpaceUsed } from "../format/xattr.js";
import { inlineStored } from "./inline.js";
import type { Ext4Inode } from "./inode.js";
import { markInodeDirty } from "./inode-write.js";
import type { Handle } from "../journal/handle.js";
import type { Ext4 } from "./super.js";
import { setXattr, XATTR_SET_CREDITS } from "./xattr-write.js";

/** EXT4_MIN_INLINE_DATA_SIZE: i_block's 60 bytes. */
export const MIN_INLINE_DATA_SIZE = 60;
const SYSTEM_DATA_INDEX = 7;
const SYSTEM_DATA = new TextEncoder().encode("data");
/** EXT4_XATTR_LEN(strlen("data")): the entry a new system.data takes. */
const SYSTEM_DATA_ENTRY = 20;

/**
 * EXT4_STATE_MAY_INLINE_DATA for inodes made in this mount: ext4_new_inode
 * sets it on an inline_data filesystem, and the first write stays inline if
 * it fits. An inode read from disk has it exactly when it has inline data
 * (ext4_find_inline_data_nolock), which the flag says; in-core only.
 */
const mayInlineNew = new WeakSet<Ext4Inode>();

export function hasInlineData(inode: Inode): boolean {
  return (inode.flags & INODE_FLAGS.INLINE_DATA) !== 0;
}

/** ext4_test_inode_state(EXT4_STATE_MAY_INLINE_DATA). */
export function mayInlineData(inode: Ext4Inode): boolean {
  return hasInlineData(inode) || mayInlineNew.has(inode);
}

/** ext4_new_inode's part: a new regular file on an inline_data filesystem may keep its first bytes inline. */
export function setMayInlineData(fs: Ext4, inode: Ext4Inode): Ext4Inode {
  if (fs.sb.featureIncompat & INCOMPAT.INLINE_DATA && isReg(inode) && !(inode.flags & INODE_FLAGS.ENCRYPT)) mayInlineNew.add(inode);
  return inode;
}

/** ext4_clear_inode_state(EXT4_STATE_MAY_INLINE_DATA): a new file that grew past the inode (or was fallocated) stays in blocks. */
export function clearMayInlineData(inode: Ext4Inode): void {
  mayInlineNew.delete(inode);
}

/** The in-inode xattr entries, and whether the area holds any (EXT4_STATE_XATTR). */
function ibodyRecords(fs: Ext4, inode: Inode) {
  const hdr = GOOD_OLD_INODE_SIZE + inode.extraIsize;
  const first = hdr + 4;
  if (u32(inode.raw, hdr) !== XATTR_MAGIC) return [];
  return parseXattrRecords(inode.raw, first, first, fs.sb.inodeSize, { ino: inode.ino });
}

const isSystemData = (r: { nameIndex: number; name: Uint8Array }) =>
  r.nameIndex === SYSTEM_DATA_INDEX && r.name.length === 4 && r.name.every((c, i) => c === SYSTEM_DATA[i]);

/**
 * ext4_get_max_inline_size: the most bytes the inode can hold inline, i_block
 * plus the largest system.data value the in-inode xattr area has room for
 * (its present value's space counts; a new one needs its entry too). 0 when
 * there is no room even for an empty entry: then nothing goes inline.
 */
export function maxInlineSize(fs: Ext4, inode: Inode): number {
  const size = fs.sb.inodeSize;
  if (size <= GOOD_OLD_INODE_SIZE || inode.extraIsize === 0) return 0;
  // The area after the ibody header (get_max_inline_xattr_value_size's first min_offs).
  const area = size - GOOD_OLD_INODE_SIZE - inode.extraIsize - 4;
  if (area < 4) return 0;
  const records = ibodyRecords(fs, inode);
  const own = records.find(isSystemData);
  // Less what the entries and values take, and the four zero bytes that end the entries.
  let free = area - xattrSpaceUsed(records) - 4;
  if (own) free += xattrSize(own.valueSize);
  else free -= SYSTEM_DATA_ENTRY;
  free = free > 0 ? free & ~3 : 0;
  return free > 0 ? free + MIN_INLINE_DATA_SIZE : 0;
}

/** ext4_get_inline_size: i_block and the system.data value, what an inline file stores. */
export function inlineSize(fs: Ext4, inode: Inode): number {
  return hasInlineData(inode) ? inlineStored(fs, inode).length : 0;
}

/** Credits of an inline write: the inode (and its xattr set). */
export const INLINE_WRITE_CREDITS = XATTR_SET_CREDITS + 1;

/**
 * ext4_generic_write_inline_data + ext4_write_inline_data_end: writes
 * src at pos into the inode when the inode may hold inline data and
 * pos + src.length fits (ext4_prepare_inline_data: a first write creates
 * system.data, ext4_create_inline_data; a longer one grows its value with
 * zeros, ext4_update_inline_data). i_size and i_disksize move together, in
 * the same handle. Returns false, changing nothing, when it does not fit:
 * the caller converts the file to blocks.
 */
export function tryWriteInline(fs: Ext4, inode: Ext4Inode, pos: number, src: Uint8Array): boolean {
  if (!mayInlineData(inode)) return false;
  const end = pos + src.length;
  if (end > maxInlineSize(fs, inode)) return false;
  const h = fs.startHandle(INLINE_WRITE_CREDITS);
  try {
    const had = hasInlineData(inode);
    const old = had ? inlineStored(fs, inode) : new Uint8Array(MIN_INLINE_DATA_SIZE);
    const buf = new Uint8Array(Math.max(old.length, end));
    buf.set(old);
    buf.set(src, pos);
    if (!had) {
      // ext4_create_inline_data: i_block zeroed (the empty extent root goes), the flags swapped.
      inode.iBlock.fill(0, 0, MIN_INLINE_DATA_SIZE);
      inode.flags = (inode.flags & ~INODE_FLAGS.EXTENTS) | INODE_FLAGS.INLINE_DATA;
    }
    inode.iBlock.set(buf.subarray(0, MIN_INLINE_DATA_SIZE));
    // The value as the write leaves it (setXattr skips an unchanged one).
    setXattr(h, fs, inode, SYSTEM_DATA_INDEX, "data", buf.slice(MIN_INLINE_DATA_SIZE));
    // ext4_update_inode_size.
    if (end > inode.size) inode.size = end;
    if (end > inode.disksize) inode.disksize = end;
    markInodeDirty(h, fs, inode);
    // The bytes live in the inode: fdatasync must wait for this transaction whether the size moved or not.
    if (h.journaled) inode.datasyncTid = h.tid;
  } finally {
    h.stop();
  }
  return true;
}

/**
 * ext4_destroy_inline_data_nolock: system.data goes, i_block is zeroed and,
 * with extents, becomes an empty depth-0 root (ext4_ext_tree_init); the
 * inline flag clears. Returns what was stored, for a restore on failure.
 */
export function destroyInlineData(h: Handle, fs: Ext4, inode: Ext4Inode): Uint8Array {
  const stored = inlineStored(fs, inode);
  setXattr(h, fs, inode, SYSTEM_DATA_INDEX, "data", null);
  inode.iBlock.fill(0, 0, MIN_INLINE_DATA_SIZE);
  inode.flags &= ~INODE_FLAGS.INLINE_DATA;
  if (fs.sb.featureIncompat & INCOMPAT.EXTENTS) {
    inode.flags |= INODE_FLAGS.EXTENTS;
    setU16(inode.iBlock, 0, 0xf30a);
    setU16(inode.iBlock, 4, 4);
  }
  clearMayInlineData(inode);
  markInodeDirty(h, fs, inode);
  return stored;
}

/** ext4_restore_inline_data: the conversion failed (ENOSPC); the inode gets its inline bytes back. */
export function restoreInlineData(h: Handle, fs: Ext4, inode: Ext4Inode, stored: Uint8Array): void {
  inode.iBlock.fill(0, 0, MIN_INLINE_DATA_SIZE);
  inode.iBlock.set(stored.subarray(0, MIN_INLINE_DATA_SIZE));
  inode.flags = (inode.flags & ~INODE_FLAGS.EXTENTS) | INODE_FLAGS.INLINE_DATA;
  setXattr(h, fs, inode, SYSTEM_DATA_INDEX, "data", stored.slice(MIN_INLINE_DATA_SIZE));
  markInodeDirty(h, fs, inode);
}
