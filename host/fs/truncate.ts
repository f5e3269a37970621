// ext4_truncate: frees every block of a file past i_size (the caller has set
// i_size; setattr's truncate_down in host/vfs/setattr.ts, orphan cleanup and
// evict call this). Extent files through extRemoveSpace, block-mapped ones
// through indRemoveSpace, inline data by trimming i_block and system.data.
// The removal extends or restarts its handle per step, so a long truncate
// spans transactions; the inode sits on the orphan list for the duration, so
// a crash in between is finished by the next mount's orphan cleanup. The
// partial last block is no business of this layer: setattr zeroes it through
// the buffered path outside the transaction (the iomap series' split).

import { INODE_FLAGS, isDir, isLnk, isReg } from "../format/inode.js";
import { autoDaAlloc, esRemoveExtent } from "./delalloc.js";
import { EXT_MAX_BLOCKS } from "./extents-write.js";
import { inlineStored } from "./inline.js";
import { type Ext4Inode, STATE } from "./inode.js";
import { markInodeDirty } from "./inode-write.js";
import { ORPHAN_ADD_CREDITS, ORPHAN_DEL_CREDITS, orphanAdd, orphanDel } from "./orphan.js";
import { ext4RemoveSpace } from "./map-blocks.js";
import type { Ext4 } from "./super.js";
import { currentTime, setXattr, XATTR_SET_CREDITS } from "./xattr-write.js";

/** EXT4_XATTR_TRANS_BLOCKS + quota: the inode, xattr and superblock-ish blocks any data change may touch. */
function metaTransExtra(fs: Ext4): number {
  return 6 + quotaTransBlocks(fs);
}

/** EXT4_MAXQUOTAS_TRANS_BLOCKS: 0 without quota (quota images are refused read-write until kept exact). */
function quotaTransBlocks(fs: Ext4): number {
  return fs.sb.featureRoCompat & 0x100 ? 3 * 2 : 0;
}

/** ext_depth. */
const extDepth = (inode: Ext4Inode) => inode.iBlock[6] | (inode.iBlock[7] << 8);

/** ext4_ext_index_trans_blocks / ext4_ind_trans_blocks: index blocks a change of `pextents` extents may dirty. */
function indexTransBlocks(fs: Ext4, inode: Ext4Inode, lblocks: number, pextents: number): number {
  if (!(inode.flags & INODE_FLAGS.EXTENTS)) return Math.ceil(lblocks / (fs.sb.blockSize / 4)) + 4;
  const depth = extDepth(inode);
  return pextents <= 1 ? depth * 2 : depth * 3;
}

/**
 * ext4_meta_trans_blocks: credits to map `lblocks` blocks in at most
 * `pextents` extents: index blocks, a bitmap and a descriptor block per
 * group they may touch, the inode, xattr and quota blocks.
 */
export function metaTransBlocks(fs: Ext4, inode: Ext4Inode, lblocks: number, pextents: number): number {
  const idx = indexTransBlocks(fs, inode, lblocks, pextents);
  const ngroups = fs.groups.length;
  const gdbCount = Math.ceil(ngroups / Math.floor(fs.sb.blockSize / fs.sb.descSize));
  let groups = idx + pextents;
  let gdp = groups;
  if (groups > ngroups) groups = ngroups;
  if (groups > gdbCount) gdp = gdbCount;
  return idx + groups + gdp + metaTransExtra(fs);
}

/** Blocks per page-sized folio (at least one): what one writepage maps. */
const blocksPerPage = (fs: Ext4) => Math.max(1, 4096 / fs.sb.blockSize);

/** ext4_writepage_trans_blocks: credits of a handle that maps one page (truncate's, collapse's and insert's first handle). */
export function writepageTransBlocks(fs: Ext4, inode: Ext4Inode): number {
  const bpp = blocksPerPage(fs);
  let n = metaTransBlocks(fs, inode, bpp, bpp);
  if (fs.config.options.data === "journal" || inode.flags & INODE_FLAGS.JOURNAL_DATA) n += bpp;
  return n;
}

/** ext4_chunk_trans_blocks: credits to map `nrblocks` blocks as one extent (fallocate's per-chunk handle). */
export function chunkTransBlocks(fs: Ext4, inode: Ext4Inode, nrblocks: number): number {
  return metaTransBlocks(fs, inode, nrblocks, 1);
}

/**
 * ext4_blocks_for_truncate: a block-mapped file's truncate handle, the
 * data-change base plus one per block (2..64) of the file.
 */
export function blocksForTruncate(fs: Ext4, inode: Ext4Inode): number {
  let needed = Math.floor(inode.blocks512 / (fs.sb.blockSize / 512));
  needed = Math.min(64, Math.max(2, needed));
  const singleData = fs.sb.featureIncompat & 0x40 ? 20 : 8;
  return singleData + 6 - 2 + quotaTransBlocks(fs) + needed;
}

/** ext4_can_truncate: regular files, directories and symlinks with blocks (a fast symlink has none). */
function canTruncate(fs: Ext4, inode: Ext4Inode): boolean {
  if (isReg(inode) || isDir(inode)) return true;
  if (!isLnk(inode)) return false;
  if (inode.flags & INODE_FLAGS.INLINE_DATA) return true;
  // ext4_inode_is_fast_symlink, as symlink.ts reads it: no blocks but an xattr block's cluster.
  const eaBlocks = inode.fileAcl !== 0 ? fs.sb.clusterSize / 512 : 0;
  return inode.blocks512 - eaBlocks !== 0;
}

/**
 * ext4_truncate: frees the blocks of `inode` past i_size (i_disksize is set
 * to i_size first, the crash-time truth of where the file ends). mtime and
 * ctime become now. An inode with links is on the orphan list while the
 * blocks go and taken off at the end; one without links (evict) stays on it
 * for evict to free.
 */
export function ext4Truncate(fs: Ext4, inode: Ext4Inode): void {
  if (!canTruncate(fs, inode)) return;
  if (inode.size === 0 && autoDaAlloc(fs)) inode.setState(STATE.DA_ALLOC_CLOSE);
  if (inode.flags & INODE_FLAGS.INLINE_DATA) {
    inlineDataTruncate(fs, inode);
    return;
  }
  const credits = (inode.flags & INODE_FLAGS.EXTENTS ? writepageTransBlocks(fs, inode) : blocksForTruncate(fs, inode)) + ORPHAN_ADD_CREDITS + ORPHAN_DEL_CREDITS;
  const handle = fs.startHandle(credits);
  let failed: unknown;
  try {
    orphanAdd(handle, fs, inode);
    // ext4_ext_truncate: "we have to know where to truncate from in crash case".
    inode.disksize = inode.size;
    markInodeDirty(handle, fs, inode);
    const bs = fs.sb.blockSize;
    const last = Math.ceil(inode.size / bs);
    if (last < EXT_MAX_BLOCKS) {
      esRemoveExtent(fs, inode, last, EXT_MAX_BLOCKS + 1 - last);
      ext4RemoveSpace(handle, fs, inode, last, EXT_MAX_BLOCKS - 1);
    }
  } catch (e) {
    failed = e;
  }
  try {
    if (inode.linksCount > 0) orphanDel(handle, fs, inode);
    const now = currentTime();
    inode.mtime = now;
    inode.ctime = now;
    markInodeDirty(handle, fs, inode);
  } finally {
    handle.stop();
  }
  if (failed) throw failed;
  // IS_SYNC: ext4_handle_sync.
  if (inode.flags & INODE_FLAGS.SYNC) fs.syncTid(inode.syncTid);
}

/**
 * ext4_inline_data_truncate: the bytes past i_size leave i_block (zeroed)
 * and system.data (its value shortened, to nothing at 60 bytes or less).
 */
function inlineDataTruncate(fs: Ext4, inode: Ext4Inode): void {
  const handle = fs.startHandle(XATTR_SET_CREDITS + 2 + ORPHAN_DEL_CREDITS);
  try {
    const stored = inlineStored(fs, inode);
    const size = inode.size;
    inode.disksize = size;
    if (size < 60) inode.iBlock.fill(0, size, 60);
    if (stored.length > 60) {
      const keep = Math.max(0, size - 60);
      if (keep < stored.length - 60) setXattr(handle, fs, inode, 7, "data", stored.slice(60, 60 + keep));
    }
    // Off the orphan list that truncate_down put it on, in this handle (ext4_inline_data_truncate).
    if (inode.linksCount > 0) orphanDel(handle, fs, inode);
    const now = currentTime();
    inode.mtime = now;
    inode.ctime = now;
    markInodeDirty(handle, fs, inode);
  } finally {
    handle.stop();
  }
}
