// ext4_setattr, as the iomap series (patches 01-03) splits its size change:
// truncate_up (i_size and i_disksize raised, the old partial last block's
// tail zeroed, no block work) and truncate_down (the new partial last block
// zeroed through the buffered path outside any transaction, the orphan entry
// and new size in one small handle, the page cache dropped past the new
// size, then ext4Truncate frees the blocks). setattrAttrs is chmod, chown and
// utimes: notify_change's rules as they apply to root (the caller has done
// the permission checks), ctime now, nanosecond times truncated to what the
// inode stores, the set-user-ID and set-group-ID bits cleared on chown.

import { truncateInodePages } from "../cache/truncate.js";
import { Ext4Error } from "../errors.js";
import { ACL_GROUP_OBJ, ACL_MASK, ACL_OTHER, ACL_USER_OBJ, aclFromDisk, aclToDisk } from "../format/acl.js";
import { INODE_FLAGS, isDir, isReg, S_IFMT, type Timespec } from "../format/inode.js";
import { XATTR_INDEX_POSIX_ACL_ACCESS } from "../format/xattr.js";
import { type BufferedIO, maxBytes } from "../buffered/io.js";
import { bhConvertInlineData } from "../buffered/bh/inline.js";
import { bhState } from "../buffered/bh/state.js";
import type { Ext4Inode } from "../fs/inode.js";
import { hasInlineData, inlineSize } from "../fs/inline-write.js";
import { markInodeDirty } from "../fs/inode-write.js";
import type { Ext4 } from "../fs/super.js";
import { ORPHAN_ADD_CREDITS, orphanAdd, orphanDel } from "../fs/orphan.js";
import { ext4Truncate } from "../fs/truncate.js";
import { inodeXattrs } from "../fs/xattr.js";
import { currentTime, setXattr, XATTR_SET_CREDITS } from "../fs/xattr-write.js";
import { chownKillPriv } from "./remove-privs.js";

export interface SetattrCtx { fs: Ext4; io: BufferedIO }

const S_ISUID = 0o4000;
const S_ISGID = 0o2000;
const S_IXGRP = 0o0010;

function perm(code: string, msg: string, inode: Ext4Inode): Ext4Error {
  return new Ext4Error(code, msg, { ino: inode.ino });
}

/** ext4_block_zero_page_range's caller side: bytes [from, to) of mapped or delayed blocks become zeros in the cache. */
function zeroTail(ctx: SetattrCtx, inode: Ext4Inode, from: number): boolean {
  const bs = ctx.fs.sb.blockSize;
  if (from % bs === 0) return false;
  // ext4_block_truncate_page: to the end of the block, whichever way the size moves.
  const to = from - (from % bs) + bs;
  if (inode.flags & INODE_FLAGS.INLINE_DATA) return false;
  ctx.io.zeroRange(inode, from, to);
  return true;
}

/**
 * ext4_setattr with ATTR_SIZE (truncate(2), ftruncate(2), O_TRUNC): the
 * caller holds the inode (iget) and has checked write permission.
 */
export function setattrSize(ctx: SetattrCtx, inode: Ext4Inode, newSize: number): void {
  const { fs } = ctx;
  if (fs.readOnly) throw perm("EROFS", "read-only file system", inode);
  if (!Number.isSafeInteger(newSize) || newSize < 0) throw perm("EINVAL", `invalid size ${newSize}`, inode);
  if (inode.flags & (INODE_FLAGS.IMMUTABLE | INODE_FLAGS.APPEND)) throw perm("EPERM", "operation not permitted", inode);
  if (isDir(inode)) throw perm("EISDIR", "is a directory", inode);
  if (!isReg(inode)) throw perm("EINVAL", "not a regular file", inode);
  // inode_newsize_ok against s_maxbytes (s_bitmap_maxbytes for block-mapped files).
  if (newSize > maxBytes(fs, inode)) throw perm("EFBIG", "file too large", inode);
  // ext4_setattr: a size past what an inline file stores moves its bytes to block 0 first.
  if (hasInlineData(inode) && newSize > inlineSize(fs, inode)) bhConvertInlineData(bhState(fs), inode);
  const oldSize = inode.size;
  if (newSize > oldSize) truncateUp(ctx, inode, oldSize, newSize);
  else truncateDown(ctx, inode, oldSize, newSize);
}

/** truncate_up: the old last block's tail reads as zeros from now on; the new size is recorded. No blocks. */
function truncateUp(ctx: SetattrCtx, inode: Ext4Inode, oldSize: number, newSize: number): void {
  const { fs } = ctx;
  const zeroed = zeroTail(ctx, inode, oldSize);
  const h = fs.startHandle(3);
  try {
    // data=ordered: the zeroed tail reaches the disk before the size that exposes it.
    if (zeroed) h.addOrderedInode?.(inode.ino);
    const now = currentTime();
    inode.mtime = now;
    inode.ctime = now;
    inode.size = newSize;
    inode.disksize = newSize;
    inode.version += 1;
    markInodeDirty(h, fs, inode);
  } finally {
    h.stop();
  }
}

/** truncate_down (and a truncate to the same size, which still frees blocks preallocated past EOF). */
function truncateDown(ctx: SetattrCtx, inode: Ext4Inode, oldSize: number, newSize: number): void {
  const { fs } = ctx;
  let orphan = false;
  if (newSize !== oldSize) {
    const zeroed = zeroTail(ctx, inode, newSize);
    const h = fs.startHandle(3 + ORPHAN_ADD_CREDITS);
    try {
      if (zeroed) h.addOrderedInode?.(inode.ino);
      if (h.journaled) {
        orphanAdd(h, fs, inode);
        orphan = true;
      }
      inode.disksize = newSize;
      inode.size = newSize;
      inode.version += 1;
      markInodeDirty(h, fs, inode);
    } finally {
      h.stop();
    }
  }
  truncateInodePages(fs, inode, newSize);
  ext4Truncate(fs, inode);
  // ext4_truncate took it off the list in its own handle; this is for when it never got that far.
  if (orphan && inode.linksCount > 0) orphanDel(undefined, fs, inode);
}

/** UTIME_NOW: the current time (utimes(path, NULL) and the like), allowed on append-only files. */
export const UTIME_NOW = "now" as const;
export type TimeArg = Timespec | typeof UTIME_NOW;

export interface Attrs {
  /** chmod: permission bits (07777); the file type bits are kept. */
  mode?: number;
  /** chown: -1 or undefined leaves the owner as it is. */
  uid?: number;
  gid?: number;
  atime?: TimeArg;
  mtime?: TimeArg;
  /** Only the filesystem's own callers set ctime; otherwise it becomes now. */
  ctime?: Timespec;
}

/**
 * chmod / chown / utimes (notify_change + ext4_setattr without ATTR_SIZE):
 * EPERM on an immutable inode, and on an append-only one for anything but
 * times set to now; chown of a non-directory clears S_ISUID and, where group
 * execute is set, S_ISGID (setattr_should_drop_sgid, for root), and loses
 * its file capabilities (security.capability); chmod
 * updates an access ACL's owner, group (or mask) and other entries
 * (posix_acl_chmod). ctime becomes now.
 */
export function setattrAttrs(ctx: SetattrCtx, inode: Ext4Inode, attrs: Attrs): void {
  const { fs } = ctx;
  if (fs.readOnly) throw perm("EROFS", "read-only file system", inode);
  const uid = attrs.uid === undefined || attrs.uid === -1 ? undefined : attrs.uid;
  const gid = attrs.gid === undefined || attrs.gid === -1 ? undefined : attrs.gid;
  for (const [name, v] of [["uid", uid], ["gid", gid]] as const) {
    if (v !== undefined && (!Number.isInteger(v) || v < 0 || v > 0xfffffffe)) throw perm("EINVAL", `invalid ${name} ${v}`, inode);
  }
  if (attrs.mode !== undefined && (!Number.isInteger(attrs.mode) || attrs.mode < 0)) throw perm("EINVAL", `invalid mode ${attrs.mode}`, inode);
  const chown = attrs.uid !== undefined || attrs.gid !== undefined;
  const timesSet = [attrs.atime, attrs.mtime].some((t) => t !== undefined && t !== UTIME_NOW);
  if (inode.flags & INODE_FLAGS.IMMUTABLE) throw perm("EPERM", "operation not permitted", inode);
  if (inode.flags & INODE_FLAGS.APPEND && (attrs.mode !== undefined || chown || timesSet)) throw perm("EPERM", "operation not permitted", inode);

  const now = currentTime();
  let mode = inode.mode;
  if (attrs.mode !== undefined) mode = (inode.mode & S_IFMT) | (attrs.mode & 0o7777);
  if (chown && !isDir(inode)) {
    // chown_common: ATTR_KILL_SUID always, ATTR_KILL_SGID when the group may execute.
    mode &= ~S_ISUID;
    if ((mode & (S_ISGID | S_IXGRP)) === (S_ISGID | S_IXGRP)) mode &= ~S_ISGID;
  }
  // setattr_prepare's ATTR_KILL_PRIV, after the checks and before the change: capabilities go with the owner.
  if (chown) chownKillPriv(fs, inode);
  inode.noSec = false;
  const acl = attrs.mode !== undefined ? accessAcl(fs, inode) : undefined;
  const h = fs.startHandle(3 + (acl ? XATTR_SET_CREDITS : 0));
  try {
    if (uid !== undefined) inode.uid = uid;
    if (gid !== undefined) inode.gid = gid;
    if (attrs.atime !== undefined) inode.atime = timestampTruncate(fs, inode, attrs.atime === UTIME_NOW ? now : attrs.atime);
    if (attrs.mtime !== undefined) inode.mtime = timestampTruncate(fs, inode, attrs.mtime === UTIME_NOW ? now : attrs.mtime);
    inode.ctime = timestampTruncate(fs, inode, attrs.ctime ?? now);
    const modeChanged = mode !== inode.mode;
    inode.mode = mode;
    if (acl && attrs.mode !== undefined) setXattr(h, fs, inode, XATTR_INDEX_POSIX_ACL_ACCESS, "", aclChmod(acl, mode));
    if (modeChanged || chown) inode.version += 1;
    markInodeDirty(h, fs, inode);
  } finally {
    h.stop();
  }
}

/** The inode's access ACL as stored (undefined: none). */
function accessAcl(fs: Ext4, inode: Ext4Inode): Uint8Array | undefined {
  for (const x of inodeXattrs(fs, inode)) if (x.nameIndex === XATTR_INDEX_POSIX_ACL_ACCESS && x.rawName.length === 0) return x.value;
  return undefined;
}

/** posix_acl_chmod_masq: the owner, group-or-mask and other entries take the new mode's bits. */
function aclChmod(disk: Uint8Array, mode: number): Uint8Array {
  const acl = aclFromDisk(disk) ?? [];
  const hasMask = acl.some((e) => e.tag === ACL_MASK);
  for (const e of acl) {
    if (e.tag === ACL_USER_OBJ) e.perm = (mode >> 6) & 7;
    else if (e.tag === ACL_MASK || (e.tag === ACL_GROUP_OBJ && !hasMask)) e.perm = (mode >> 3) & 7;
    else if (e.tag === ACL_OTHER) e.perm = mode & 7;
  }
  return aclToDisk(acl);
}

/**
 * timestamp_truncate: clamped to what the inode can store (s_time_min /
 * s_time_max: 32-bit seconds without the extra fields, to 2446 with them)
 * and to its granularity (nanoseconds only where i_extra_isize holds them).
 */
export function timestampTruncate(fs: Ext4, inode: Ext4Inode, t: Timespec): Timespec {
  const extra = fs.sb.inodeSize > 128 && inode.extraIsize >= 16;
  const min = -0x80000000;
  const max = extra ? 0x7fffffff + 3 * 0x100000000 : 0x7fffffff;
  if (t.sec < min) return { sec: min, nsec: 0 };
  if (t.sec > max) return { sec: max, nsec: 0 };
  return { sec: Math.trunc(t.sec), nsec: extra ? t.nsec : 0 };
}
