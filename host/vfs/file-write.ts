// The data-side system calls (write, writev, fsync, fdatasync, ftruncate,
// fallocate) and the attribute ones (chmod, chown, utimes) on an inode, as
// the VFS does them above ext4: the checks of generic_write_checks and
// do_truncate, file_modified (suid/sgid cleared, mtime and ctime set) in its
// own handle, the buffered path's write, O_SYNC / O_DSYNC's sync after it;
// the size and attribute steps are setattr's (host/vfs/setattr.ts).

import { maxBytes } from "../buffered/io.js";
import { Ext4Error } from "../errors.js";
import { INODE_FLAGS, type Inode, isDir, isReg, type Timespec } from "../format/inode.js";
import type { Ext4Inode } from "../fs/inode.js";
import { markInodeDirty } from "../fs/inode-write.js";
import { coarseTime, currentTime } from "../fs/xattr-write.js";
import type { VfsContext } from "./context.js";
import type { OpenFile } from "./file-table.js";
import { vfsFallocate } from "./fallocate.js";
import { checkAccess, W_OK } from "./permission.js";
import { removePrivs, shouldDropSgid } from "./remove-privs.js";
import { setattrAttrs, setattrSize } from "./setattr.js";

const fail = (code: string, text: string): never => { throw new Ext4Error(code, text); };
const S_ISGID = 0o2000;
/** An inode-table block and the superblock: what ext4_dirty_inode's handle reserves. */
const DIRTY_INODE_CREDITS = 2;

function sameTime(a: Timespec, b: Timespec): boolean { return a.sec === b.sec && a.nsec === b.nsec; }

/** Writes the in-core inode in a handle of its own (ext4_dirty_inode). */
export function dirtyInode(ctx: VfsContext, inode: Ext4Inode): void {
  const h = ctx.fs.startHandle(DIRTY_INODE_CREDITS);
  try {
    markInodeDirty(h, ctx.fs, inode);
  } finally {
    h.stop();
  }
}

/**
 * file_modified: file_remove_privs (host/vfs/remove-privs.ts: set-ID bits
 * for a caller other than root, file capabilities for anyone) and
 * file_update_time (mtime and ctime now, written only when they change).
 */
export function fileModified(ctx: VfsContext, inode: Ext4Inode): void {
  let changed = false;
  // S_NOSEC first: once nothing is left to remove, a write costs no credential lookup and no xattr walk.
  if (!inode.noSec) {
    const mode = removePrivs(ctx.fs, ctx.cred(), inode);
    if (mode !== inode.mode) { inode.mode = mode; changed = true; }
  }
  // Multigrain timestamps (ext4 is FS_MGTIME): the coarse clock, so a stream of writes dirties the inode once a
  // tick, not once a call; a fine-grained stamp only when the times were looked at since the last change and the
  // coarse one would not show a change.
  let now = coarseTime();
  if (timesQueried.has(inode) && !afterTime(now, inode.ctime)) now = currentTime();
  if (!sameTime(inode.mtime, now) || !sameTime(inode.ctime, now)) {
    inode.mtime = { ...now };
    inode.ctime = { ...now };
    timesQueried.delete(inode);
    changed = true;
  }
  if (changed) dirtyInode(ctx, inode);
}

/** Inodes whose mtime or ctime was read (stat) since they last changed: I_CTIME_QUERIED. */
const timesQueried = new WeakSet<object>();

/** fill_mg_cmtime: stat read the times, so the next change must show. */
export function markTimesQueried(inode: object): void {
  timesQueried.add(inode);
}

function afterTime(a: Timespec, b: Timespec): boolean { return a.sec > b.sec || (a.sec === b.sec && a.nsec > b.nsec); }

/**
 * write(2) / pwrite(2) of `src` to an open file: at `pos`, or at the file's
 * position when pos is null (and then the position moves on); O_APPEND
 * writes at the end either way, as Linux does. Returns the bytes written.
 */
export function vfsWrite(ctx: VfsContext, f: OpenFile, src: Uint8Array, pos: number | null): number {
  const fs = ctx.fs;
  const inode = f.inode;
  if (!f.mode.writable) fail("EBADF", "bad file descriptor");
  if (fs.readOnly) fail("EROFS", "read-only file system");
  if (isDir(inode)) fail("EISDIR", "illegal operation on a directory");
  if (pos !== null && pos < 0) fail("EINVAL", "invalid argument");
  // Devices, FIFOs and sockets have no data in an image: nothing to write into.
  if (!isReg(inode)) fail("EINVAL", "invalid argument");
  if (inode.flags & INODE_FLAGS.IMMUTABLE) fail("EPERM", "operation not permitted");
  if (inode.flags & INODE_FLAGS.APPEND && !f.mode.append) fail("EPERM", "operation not permitted");
  let at = f.mode.append ? inode.size : pos ?? f.pos;
  // generic_write_checks: nothing to write is no write (no time update); past s_maxbytes EFBIG.
  if (src.length === 0) return 0;
  const limit = maxBytes(fs, inode);
  if (at >= limit) fail("EFBIG", "file too large");
  const data = at + src.length > limit ? src.subarray(0, limit - at) : src;
  fileModified(ctx, inode);
  const io = ctx.io(inode);
  ctx.written.add(inode);
  const n = io.write(inode, at, data);
  at += n;
  if (pos === null || f.mode.append) f.pos = at;
  // generic_write_sync: O_SYNC is fsync after the write, O_DSYNC fdatasync.
  if (n > 0 && (f.mode.sync || f.mode.dsync)) io.fsync(inode, !f.mode.sync);
  return n;
}

/** writev(2): the buffers written in turn, as one write would (stops at a short write). */
export function vfsWritev(ctx: VfsContext, f: OpenFile, bufs: readonly Uint8Array[], pos: number | null): number {
  let total = 0;
  for (const b of bufs) {
    if (b.length === 0) continue;
    const n = vfsWrite(ctx, f, b, pos === null ? null : pos + total);
    total += n;
    if (n < b.length) break;
  }
  return total;
}

/**
 * fsync(2) / fdatasync(2) (ext4_sync_file): a regular file's data written
 * back and waited, then the journal commit of its transaction; a directory's
 * or a special file's metadata only. Allowed on any open file.
 */
export function vfsFsync(ctx: VfsContext, inode: Ext4Inode, datasync: boolean): void {
  const fs = ctx.fs;
  if (fs.readOnly) return;
  if (isReg(inode)) ctx.io(inode).fsync(inode, datasync);
  else fs.syncTid(datasync ? inode.datasyncTid : inode.syncTid);
}

/** The setattr context of an inode (its buffered path). */
function setattrCtx(ctx: VfsContext, inode: Ext4Inode) {
  return { fs: ctx.fs, io: ctx.io(inode) };
}

/**
 * do_truncate's checks (the caller has checked how the file was reached:
 * write permission for truncate(2), a writable descriptor for ftruncate),
 * then setattr's size change.
 */
export function vfsTruncate(ctx: VfsContext, inode: Ext4Inode, size: number): void {
  const fs = ctx.fs;
  if (size < 0 || !Number.isFinite(size)) fail("EINVAL", "invalid argument");
  if (isDir(inode)) fail("EISDIR", "illegal operation on a directory");
  if (!isReg(inode)) fail("EINVAL", "invalid argument");
  if (fs.readOnly) fail("EROFS", "read-only file system");
  if (inode.flags & (INODE_FLAGS.IMMUTABLE | INODE_FLAGS.APPEND)) fail("EPERM", "operation not permitted");
  if (size > maxBytes(fs, inode)) fail("EFBIG", "file too large");
  ctx.written.add(inode);
  // do_truncate: dentry_needs_remove_privs, done by setattr_prepare before the size changes.
  const mode = removePrivs(fs, ctx.cred(), inode);
  setattrSize(setattrCtx(ctx, inode), inode, size);
  // do_truncate from ftruncate and O_TRUNC asks for ATTR_MTIME | ATTR_CTIME: set even when the size stays.
  setattrAttrs(setattrCtx(ctx, inode), inode, mode !== inode.mode ? { mtime: "now", mode } : { mtime: "now" });
}

/** truncate(2) of a path's inode: write permission first (may be EACCES, EROFS, EPERM). */
export function vfsTruncatePath(ctx: VfsContext, inode: Ext4Inode, size: number): void {
  if (isDir(inode)) fail("EISDIR", "illegal operation on a directory");
  checkAccess(ctx.fs, inode, W_OK);
  vfsTruncate(ctx, inode, size);
}

/** ftruncate(2): a descriptor not open for writing is EINVAL (do_ftruncate). */
export function vfsFtruncate(ctx: VfsContext, f: OpenFile, size: number): void {
  if (!f.mode.writable) fail("EINVAL", "invalid argument");
  if (f.mode.append && f.inode.flags & INODE_FLAGS.APPEND) fail("EPERM", "operation not permitted");
  vfsTruncate(ctx, f.inode, size);
}

export interface FallocateFlags { keepSize?: boolean; punchHole?: boolean; zeroRange?: boolean; collapseRange?: boolean; insertRange?: boolean }

/** fallocate(2) on an open file: a descriptor not open for writing is EBADF (vfs_fallocate). */
export function vfsFallocateFile(ctx: VfsContext, f: OpenFile, offset: number, length: number, flags: FallocateFlags): void {
  if (!f.mode.writable) fail("EBADF", "bad file descriptor");
  if (ctx.fs.readOnly) fail("EROFS", "read-only file system");
  ctx.written.add(f.inode);
  vfsFallocate({ ...setattrCtx(ctx, f.inode), cred: ctx.cred() }, f.inode, offset, length, flags);
}

/** inode_owner_or_capable. */
function ownerOrRoot(ctx: VfsContext, inode: Inode): void {
  const { uid } = ctx.cred();
  if (uid !== 0 && uid !== inode.uid) fail("EPERM", "operation not permitted");
}

function attrChecks(ctx: VfsContext, inode: Inode): void {
  if (ctx.fs.readOnly) fail("EROFS", "read-only file system");
  if (inode.flags & (INODE_FLAGS.IMMUTABLE | INODE_FLAGS.APPEND)) fail("EPERM", "operation not permitted");
}

/** chmod(2): the owner or root; a caller outside the file's group loses sgid (setattr_prepare). */
export function vfsChmod(ctx: VfsContext, inode: Ext4Inode, mode: number): void {
  attrChecks(ctx, inode);
  ownerOrRoot(ctx, inode);
  let perm = mode & 0o7777;
  const c = ctx.cred();
  if (c.uid !== 0 && perm & S_ISGID && c.gid !== inode.gid && !c.groups.includes(inode.gid)) perm &= ~S_ISGID;
  setattrAttrs(setattrCtx(ctx, inode), inode, { mode: perm });
}

/** chown(2) / lchown / fchown: -1 leaves an id; root may set any, the owner only its own groups. */
export function vfsChown(ctx: VfsContext, inode: Ext4Inode, uid: number, gid: number): void {
  attrChecks(ctx, inode);
  const c = ctx.cred();
  const newUid = uid === -1 || uid === 0xffffffff ? inode.uid : uid;
  const newGid = gid === -1 || gid === 0xffffffff ? inode.gid : gid;
  if (c.uid !== 0) {
    if (newUid !== inode.uid || c.uid !== inode.uid) fail("EPERM", "operation not permitted");
    if (newGid !== inode.gid && newGid !== c.gid && !c.groups.includes(newGid)) fail("EPERM", "operation not permitted");
  }
  // setattr clears suid (and sgid with group execute) of a non-directory whose owner changes (chown_common).
  const attrs: { uid?: number; gid?: number; mode?: number } = {};
  if (uid !== -1 && uid !== 0xffffffff) attrs.uid = newUid;
  if (gid !== -1 && gid !== 0xffffffff) attrs.gid = newGid;
  // chown_common's setattr_should_drop_sgid for a caller outside the file's group (the group-execute case is setattr's).
  if (!isDir(inode) && shouldDropSgid(c, inode)) attrs.mode = inode.mode & 0o5777;
  setattrAttrs(setattrCtx(ctx, inode), inode, attrs);
}

/** A time as utimensat takes it: a timestamp, "now" (UTIME_NOW) or "omit" (UTIME_OMIT). */
export type TimeArg = Timespec | "now" | "omit";

/**
 * utimensat(2): explicit times need the owner or root; "now" for both also
 * does with write permission. ctime is set now.
 */
export function vfsUtimes(ctx: VfsContext, inode: Ext4Inode, atime: TimeArg, mtime: TimeArg): void {
  attrChecks(ctx, inode);
  if (atime === "omit" && mtime === "omit") return;
  const c = ctx.cred();
  if (c.uid !== 0 && c.uid !== inode.uid) {
    if (atime !== "now" || mtime !== "now") fail("EPERM", "operation not permitted");
    checkAccess(ctx.fs, inode, W_OK);
  }
  // ctime becomes now in setattr; "omit" leaves a time as it is (UTIME_OMIT).
  const attrs: { atime?: Timespec | "now"; mtime?: Timespec | "now" } = {};
  if (atime !== "omit") attrs.atime = atime;
  if (mtime !== "omit") attrs.mtime = mtime;
  setattrAttrs(setattrCtx(ctx, inode), inode, attrs);
}
