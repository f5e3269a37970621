// fallocate(2): vfs_fallocate's mode and range checks, then ext4_fallocate's
// per mode (fs/ext4/extents.c, inode.c as of 6.18): the page-cache side
// (writeback before a shift, invalidation of the range, zeroing of partial
// blocks through the inode's buffered path) here, the block side in
// host/fs/fallocate.ts.

import { truncateInodePages } from "../cache/truncate.js";
import { Ext4Error } from "../errors.js";
import { INODE_FLAGS, isDir, isReg, S_IFIFO, S_IFMT } from "../format/inode.js";
import { type BufferedIO, maxBytes } from "../buffered/io.js";
import { bhConvertInlineData } from "../buffered/bh/inline.js";
import { bhState } from "../buffered/bh/state.js";
import { mayInlineData } from "../fs/inline-write.js";
import { allocFileBlocks, collapseRange, insertRange, punchHole, updateDisksizeBeforePunch } from "../fs/fallocate.js";
import type { Ext4Inode } from "../fs/inode.js";
import { markInodeDirty } from "../fs/inode-write.js";
import { currentTime } from "../fs/xattr-write.js";
import { ES } from "../fs/extents-status.js";
import { GET_BLOCKS } from "../fs/map-blocks.js";
import type { Ext4 } from "../fs/super.js";
import type { Cred } from "./context.js";
import { removePrivs } from "./remove-privs.js";

export interface FallocateMode {
  keepSize?: boolean;
  punchHole?: boolean;
  zeroRange?: boolean;
  collapseRange?: boolean;
  insertRange?: boolean;
}

/** The FALLOC_FL_* bits (include/uapi/linux/falloc.h). */
export const FALLOC_FL = {
  KEEP_SIZE: 0x01, PUNCH_HOLE: 0x02, NO_HIDE_STALE: 0x04, COLLAPSE_RANGE: 0x08, ZERO_RANGE: 0x10, INSERT_RANGE: 0x20, UNSHARE_RANGE: 0x40, WRITE_ZEROES: 0x80,
} as const;
const MODE_MASK = FALLOC_FL.PUNCH_HOLE | FALLOC_FL.COLLAPSE_RANGE | FALLOC_FL.ZERO_RANGE | FALLOC_FL.INSERT_RANGE | FALLOC_FL.UNSHARE_RANGE | FALLOC_FL.WRITE_ZEROES;
/** What ext4_fallocate implements here (WRITE_ZEROES needs a device that unmaps zeroes: not offered). */
const EXT4_SUPPORTED = FALLOC_FL.KEEP_SIZE | FALLOC_FL.PUNCH_HOLE | FALLOC_FL.COLLAPSE_RANGE | FALLOC_FL.ZERO_RANGE | FALLOC_FL.INSERT_RANGE;

export function fallocateBits(mode: FallocateMode): number {
  return (mode.keepSize ? FALLOC_FL.KEEP_SIZE : 0) | (mode.punchHole ? FALLOC_FL.PUNCH_HOLE : 0) | (mode.zeroRange ? FALLOC_FL.ZERO_RANGE : 0)
    | (mode.collapseRange ? FALLOC_FL.COLLAPSE_RANGE : 0) | (mode.insertRange ? FALLOC_FL.INSERT_RANGE : 0);
}

/** cred: the caller, for file_modified's privilege removal (none: nothing removed). */
export interface FallocateCtx { fs: Ext4; io: BufferedIO; cred?: Cred }

const PAGE = 4096;

function fail(code: string, msg: string, inode: Ext4Inode): Ext4Error {
  return new Ext4Error(code, msg, { ino: inode.ino });
}

/**
 * vfs_fallocate + ext4_fallocate on `inode` (held by the caller, opened for
 * writing): the checks in the kernel's order and with its error codes, then
 * the mode. mtime and ctime become now (file_modified).
 */
export function vfsFallocate(ctx: FallocateCtx, inode: Ext4Inode, offset: number, len: number, mode: FallocateMode | number = 0): void {
  const { fs } = ctx;
  const bits = typeof mode === "number" ? mode : fallocateBits(mode);
  // vfs_fallocate.
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(len) || offset < 0 || len <= 0) throw fail("EINVAL", "invalid argument", inode);
  if (!Number.isInteger(bits) || bits < 0 || bits & ~(MODE_MASK | FALLOC_FL.KEEP_SIZE)) throw fail("EOPNOTSUPP", `unknown fallocate mode 0x${bits.toString(16)}`, inode);
  const op = bits & MODE_MASK;
  const keepSize = (bits & FALLOC_FL.KEEP_SIZE) !== 0;
  switch (op) {
    case 0: case FALLOC_FL.UNSHARE_RANGE: case FALLOC_FL.ZERO_RANGE: break;
    case FALLOC_FL.PUNCH_HOLE:
      if (!keepSize) throw fail("EOPNOTSUPP", "punch hole needs keep size", inode);
      break;
    case FALLOC_FL.COLLAPSE_RANGE: case FALLOC_FL.INSERT_RANGE: case FALLOC_FL.WRITE_ZEROES:
      if (keepSize) throw fail("EOPNOTSUPP", "this mode changes the size: keep size makes no sense", inode);
      break;
    default:
      throw fail("EOPNOTSUPP", `fallocate modes 0x${op.toString(16)} do not combine`, inode);
  }
  if (fs.readOnly) throw fail("EROFS", "read-only file system", inode);
  if (bits & ~FALLOC_FL.KEEP_SIZE && inode.flags & INODE_FLAGS.APPEND) throw fail("EPERM", "operation not permitted", inode);
  if (inode.flags & INODE_FLAGS.IMMUTABLE) throw fail("EPERM", "operation not permitted", inode);
  if ((inode.mode & S_IFMT) === S_IFIFO) throw fail("ESPIPE", "illegal seek", inode);
  if (isDir(inode)) throw fail("EISDIR", "is a directory", inode);
  if (!isReg(inode)) throw fail("ENODEV", "no such device", inode);
  // s_maxbytes (the extent limit, whatever the file's mapping).
  if (offset + len > maxBytes(fs, { ...inode, flags: inode.flags | INODE_FLAGS.EXTENTS })) throw fail("EFBIG", "file too large", inode);

  // ext4_fallocate.
  if (inode.flags & INODE_FLAGS.ENCRYPT && op & (FALLOC_FL.COLLAPSE_RANGE | FALLOC_FL.INSERT_RANGE)) throw fail("EOPNOTSUPP", "collapse and insert range would need re-encryption", inode);
  if (bits & ~EXT4_SUPPORTED) throw fail("EOPNOTSUPP", `ext4 does not support fallocate mode 0x${bits.toString(16)}`, inode);
  // ext4_convert_inline_data: inline bytes move to block 0; a new file that might have gone inline no longer will.
  if (mayInlineData(inode)) bhConvertInlineData(bhState(fs), inode);
  // file_modified comes before the mode's own checks (ext4_fallocate since 6.15).
  touch(fs, inode, ctx.cred);
  const extents = (inode.flags & INODE_FLAGS.EXTENTS) !== 0;
  if (op !== FALLOC_FL.PUNCH_HOLE && !extents) throw fail("EOPNOTSUPP", "only punch hole works on a block-mapped (non-extent) file", inode);
  if (op === FALLOC_FL.PUNCH_HOLE) return doPunchHole(ctx, inode, offset, len);
  if (op === FALLOC_FL.COLLAPSE_RANGE) return doCollapseRange(ctx, inode, offset, len);
  if (op === FALLOC_FL.INSERT_RANGE) return doInsertRange(ctx, inode, offset, len);
  if (op === FALLOC_FL.ZERO_RANGE) return doZeroRange(ctx, inode, offset, len, keepSize);
  doAllocate(ctx, inode, offset, len, keepSize);
}

/** inode_newsize_ok's EFBIG. */
function newSizeOk(fs: Ext4, inode: Ext4Inode, size: number): void {
  if (size > maxBytes(fs, inode)) throw fail("EFBIG", "file too large", inode);
}

/** ext4_do_fallocate: unwritten extents over the holes of the range; i_size follows unless keep size. */
function doAllocate(ctx: FallocateCtx, inode: Ext4Inode, offset: number, len: number, keepSize: boolean): void {
  const { fs } = ctx;
  const bs = fs.sb.blockSize;
  const lblk = Math.floor(offset / bs);
  const blocks = Math.ceil((offset + len) / bs) - lblk;
  let newSize: number | undefined;
  if (!keepSize && (offset + len > inode.size || offset + len > inode.disksize)) {
    newSize = offset + len;
    newSizeOk(fs, inode, newSize);
  }
  writeDelayed(ctx, inode, lblk, blocks);
  allocFileBlocks(fs, inode, lblk, blocks, newSize, GET_BLOCKS.CREATE_UNWRIT_EXT);
}

/** file_modified: file_remove_privs, then file_update_time (mtime and ctime now), in a handle of their own. */
function touch(fs: Ext4, inode: Ext4Inode, cred: Cred | undefined): void {
  if (cred) inode.mode = removePrivs(fs, cred, inode);
  const h = fs.startHandle(1);
  try {
    const now = currentTime();
    inode.mtime = now;
    inode.ctime = now;
    markInodeDirty(h, fs, inode);
  } finally {
    h.stop();
  }
}

/** The page-cache half of ext4_zero_partial_blocks: the partial blocks at the range's two ends, zeroed where mapped. */
function zeroPartialBlocks(ctx: FallocateCtx, inode: Ext4Inode, offset: number, len: number): void {
  const bs = ctx.fs.sb.blockSize;
  const end = offset + len;
  const zero = (from: number, to: number) => {
    if (to > from) ctx.io.zeroRange(inode, from, to);
  };
  const startBlockEnd = offset - (offset % bs) + bs;
  if (Math.floor(offset / bs) === Math.floor((end - 1) / bs)) {
    // Within one block.
    if (offset % bs !== 0 || end % bs !== 0) zero(offset, end);
    return;
  }
  if (offset % bs !== 0) zero(offset, startBlockEnd);
  if (end % bs !== 0) zero(end - (end % bs), end);
}

/**
 * Delayed blocks in logical [lblk, lblk+len) are allocated and written
 * first: the allocation below maps holes, and a delayed block is one only to
 * the on-disk tree (the kernel's ext4_map_blocks converts the delayed extent
 * in place; written back first, the result is the same file and map).
 */
function writeDelayed(ctx: FallocateCtx, inode: Ext4Inode, lblk: number, len: number): void {
  if (inode.delayedBlocks === 0) return;
  const bs = ctx.fs.sb.blockSize;
  if (inode.es.countBlocks(ES.DELAYED, lblk, len) === 0) return;
  ctx.io.writeback(inode, lblk * bs, (lblk + len) * bs, true);
}

/** Writes back [from, to) of the inode's dirty data and waits (filemap_write_and_wait_range). */
function writeAndWait(ctx: FallocateCtx, inode: Ext4Inode, from: number, to: number): void {
  ctx.io.writeback(inode, from, to, true);
}

/** ext4_punch_hole. */
function doPunchHole(ctx: FallocateCtx, inode: Ext4Inode, offset: number, len: number): void {
  const { fs } = ctx;
  const bs = fs.sb.blockSize;
  // No need to punch past i_size; beyond it only up to the page holding EOF, and not past the mapping's reach.
  if (offset >= inode.size) return;
  const maxEnd = inode.flags & INODE_FLAGS.EXTENTS ? 0xffffffff * bs : maxBytes(fs, inode) - bs;
  let end = offset + len;
  if (end > inode.size) end = Math.ceil(inode.size / PAGE) * PAGE;
  if (end > maxEnd) end = maxEnd;
  updateDisksizeBeforePunch(fs, inode, offset, end - offset);
  // The whole blocks leave the cache; the partial ones are zeroed where mapped.
  const first = Math.ceil(offset / bs) * bs;
  const last = Math.floor(end / bs) * bs;
  if (last > first) truncateInodePages(fs, inode, first, last);
  zeroPartialBlocks(ctx, inode, offset, end - offset);
  punchHole(fs, inode, offset, end);
}

/** ext4_zero_range: whole blocks become unwritten extents (holes get some), partial ones are zeroed. */
function doZeroRange(ctx: FallocateCtx, inode: Ext4Inode, offset: number, len: number, keepSize: boolean): void {
  const { fs } = ctx;
  const bs = fs.sb.blockSize;
  const end = offset + len;
  let newSize: number | undefined;
  if (!keepSize && (end > inode.size || end > inode.disksize)) {
    newSize = end;
    newSizeOk(fs, inode, newSize);
  }
  const flags = GET_BLOCKS.CREATE_UNWRIT_EXT;
  writeDelayed(ctx, inode, Math.floor(offset / bs), Math.ceil(end / bs) - Math.floor(offset / bs));
  // Preallocate the range with its unaligned edges.
  if (offset % bs !== 0 || end % bs !== 0) {
    const lblk = Math.floor(offset / bs);
    allocFileBlocks(fs, inode, lblk, Math.ceil(end / bs) - lblk, newSize, flags);
  }
  updateDisksizeBeforePunch(fs, inode, offset, len);
  const first = Math.ceil(offset / bs);
  const stop = Math.floor(end / bs);
  if (stop > first) {
    truncateInodePages(fs, inode, first * bs, stop * bs);
    allocFileBlocks(fs, inode, first, stop - first, newSize, flags | GET_BLOCKS.CONVERT_UNWRITTEN);
  }
  if (offset % bs === 0 && end % bs === 0) return;
  zeroPartialBlocks(ctx, inode, offset, len);
}

/** ext4_collapse_range: cluster-aligned, ending before EOF. */
function doCollapseRange(ctx: FallocateCtx, inode: Ext4Inode, offset: number, len: number): void {
  const { fs } = ctx;
  if (offset % fs.sb.clusterSize !== 0 || len % fs.sb.clusterSize !== 0) throw fail("EINVAL", "collapse range must be cluster aligned", inode);
  if (offset + len >= inode.size) throw fail("EINVAL", "collapse range must end before EOF", inode);
  const ioffset = Math.floor(offset / PAGE) * PAGE;
  // The tail of the page before the range, and everything that moves, reach the disk before the cache goes.
  // filemap_write_and_wait_range's end is inclusive: the (large) folio holding `offset` is written too.
  writeAndWait(ctx, inode, ioffset, offset + 1);
  writeAndWait(ctx, inode, offset + len, Infinity);
  truncateInodePages(fs, inode, ioffset);
  collapseRange(fs, inode, offset, len);
}

/** ext4_insert_range: cluster-aligned, starting before EOF, the new size within s_maxbytes. */
function doInsertRange(ctx: FallocateCtx, inode: Ext4Inode, offset: number, len: number): void {
  const { fs } = ctx;
  if (offset % fs.sb.clusterSize !== 0 || len % fs.sb.clusterSize !== 0) throw fail("EINVAL", "insert range must be cluster aligned", inode);
  if (len > maxBytes(fs, inode) - inode.size) throw fail("EFBIG", "file too large", inode);
  if (offset >= inode.size) throw fail("EINVAL", "insert range must start before EOF", inode);
  const ioffset = Math.floor(offset / PAGE) * PAGE;
  writeAndWait(ctx, inode, ioffset, Infinity);
  truncateInodePages(fs, inode, ioffset);
  insertRange(fs, inode, offset, len);
}
