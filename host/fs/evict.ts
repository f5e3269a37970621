// ext4_evict_inode for an inode nothing links to and nothing holds: its
// cached pages dropped, i_size 0 and every block freed (ext4_truncate, in
// handles of its own while the orphan record keeps a crash safe), the xattr
// block released, then the orphan record dropped and the inode freed in one
// last handle, so a crash leaves either the orphan (finished at the next
// mount) or nothing. The final iput calls it (InodeCache.evict, set by a
// read-write mount); so does the mount's orphan cleanup, through iput.

import { INODE_FLAGS, isLnk } from "../format/inode.js";
import { EXT_MAX_BLOCKS, extRemoveSpace } from "./extents-write.js";
import { freeInode } from "./ialloc.js";
import { indRemoveSpace } from "./indirect-write.js";
import { type Ext4Inode, setInodeSize } from "./inode.js";
import { isFastSymlink } from "./inode-table.js";
import { markInodeDirty } from "./inode-write.js";
import { ORPHAN_ADD_CREDITS, ORPHAN_DEL_CREDITS, orphanAdd, orphanDel } from "./orphan.js";
import type { Ext4 } from "./super.js";
import { xattrDeleteInode } from "./xattr-write.js";

/**
 * The last handle's credits: the inode, the xattr block with its bitmap,
 * group descriptor and mbcache neighbour, the orphan edits, the inode bitmap
 * and its descriptor.
 */
const EVICT_CREDITS = 1 + 4 + ORPHAN_DEL_CREDITS + 2 + 2;

/** ext4_evict_inode for `inode`, unlinked (i_links_count 0) and unreferenced. */
export function evictInode(fs: Ext4, inode: Ext4Inode): void {
  if (inode.linksCount !== 0) throw new Error(`evicting inode ${inode.ino} that still has ${inode.linksCount} links`);
  if (inode.count !== 0) throw new Error(`evicting inode ${inode.ino} while ${inode.count} references are held`);
  dropPages(fs, inode);
  let h;
  try {
    h = fs.startHandle(1 + ORPHAN_ADD_CREDITS);
  } catch (e) {
    // No handle (read-only after an error): the on-disk orphan stays for the next mount; only the in-core record goes.
    orphanDel(undefined, fs, inode);
    throw e;
  }
  try {
    // i_size 0 before the truncate; a fast symlink's target in i_block becomes an empty block map.
    if (isLnk(inode) && isFastSymlink(fs, inode) && !(inode.flags & INODE_FLAGS.INLINE_DATA)) inode.iBlock.fill(0);
    setInodeSize(inode, 0);
    markInodeDirty(h, fs, inode);
  } finally {
    h.stop();
  }
  if (inode.blocks512 !== 0) truncateBlocks(fs, inode);
  h = fs.startHandle(EVICT_CREDITS);
  try {
    xattrDeleteInode(h, fs, inode);
    orphanDel(h, fs, inode);
    // freeInode sets i_dtime and writes the inode with its bit cleared.
    freeInode(h, fs, inode);
  } finally {
    h.stop();
  }
}

/**
 * truncate_inode_pages_final (until host/cache/truncate.ts lands): the
 * inode's cached folios dropped. Mapping ids are per (ino, generation), so
 * a later inode of this number could never see them, but they would hold
 * cache space.
 */
function dropPages(fs: Ext4, inode: Ext4Inode): void {
  fs.cache.truncate(fs.cache.mappingOf(inode), 0);
}

/**
 * ext4_truncate to i_disksize (until host/fs/truncate.ts lands): the inode
 * on the orphan list for the duration, its blocks past i_disksize freed,
 * the record dropped at the end if the inode keeps links.
 */
export function truncateBlocks(fs: Ext4, inode: Ext4Inode): void {
  if (inode.flags & INODE_FLAGS.INLINE_DATA) return;
  const first = Math.ceil(inode.disksize / fs.sb.blockSize);
  const h = fs.startHandle(16);
  try {
    orphanAdd(h, fs, inode);
    if (inode.flags & INODE_FLAGS.EXTENTS) extRemoveSpace(h, fs, inode, first, EXT_MAX_BLOCKS - 1);
    else indRemoveSpace(h, fs, inode, first, EXT_MAX_BLOCKS - 1);
    markInodeDirty(h, fs, inode);
    if (inode.linksCount !== 0) orphanDel(h, fs, inode);
  } finally {
    h.stop();
  }
}
