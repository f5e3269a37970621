// ext4_evict_inode for an inode nothing links to and nothing holds: its
// cached pages dropped, i_size 0 and every block freed (ext4_truncate, in
// handles of its own while the orphan record keeps a crash safe), the xattr
// block released, then the orphan record dropped and the inode freed in one
// last handle, so a crash leaves either the orphan (finished at the next
// mount) or nothing. The final iput calls it (InodeCache.evict, set by a
// read-write mount); so does the mount's orphan cleanup, through iput.

import { truncateInodePages } from "../cache/truncate.js";
import { Ext4Error } from "../errors.js";
import { INODE_FLAGS, isLnk } from "../format/inode.js";
import { freeInode } from "./ialloc.js";
import { type Ext4Inode, setInodeSize } from "./inode.js";
import { isFastSymlink } from "./inode-table.js";
import { markInodeDirty } from "./inode-write.js";
import { ORPHAN_ADD_CREDITS, ORPHAN_DEL_CREDITS, orphanDel } from "./orphan.js";
import type { Ext4 } from "./super.js";
import { ext4Truncate } from "./truncate.js";
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
  truncateInodePages(fs, inode, 0);
  let h;
  try {
    h = fs.startHandle(1 + ORPHAN_ADD_CREDITS);
  } catch (e) {
    // No handle (the volume turned read-only after an error, or the journal aborted): as the
    // kernel's no_delete, the in-core record goes and the on-disk orphan stays for the next mount.
    orphanDel(undefined, fs, inode);
    if (e instanceof Ext4Error && (e.code === "EROFS" || e.code === "EIO")) return;
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
  if (inode.blocks512 !== 0) ext4Truncate(fs, inode);
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
 * At unmount: the unlinked inodes still held (descriptors the unmount
 * closes) lose their references and are evicted, as the final fput of each
 * would do before the kernel's put_super. Holders must not use them after.
 */
export function evictHeldUnlinked(fs: Ext4): void {
  for (const inode of fs.icache.busyInodes()) {
    if (inode.linksCount !== 0 || inode.count === 0) continue;
    inode.count = 0;
    evictInode(fs, inode);
  }
}
