// The namespace system calls above ext4's inode operations (fs/namei.c's
// do_filp_open, do_mkdirat, do_rmdir, do_unlinkat, do_renameat2, do_linkat,
// do_symlinkat, do_mknodat): the parent looked up, the last component
// checked, mnt_want_write (EROFS), may_create / may_delete (access bits,
// sticky directories), then the fs operation (host/fs/namei-ops.ts), which
// starts and stops its own handles. Errors carry the code and a short text;
// the volume adds syscall, path and node's message.

import { Ext4Error } from "../errors.js";
import { INODE_FLAGS, type Inode, isDir, isLnk, S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFMT, S_IFREG, S_IFSOCK } from "../format/inode.js";
import { lookup } from "../fs/dir.js";
import type { Ext4Inode } from "../fs/inode.js";
import { ext4Create, ext4Link, ext4Mkdir, ext4Mknod, ext4Rename, ext4Rmdir, ext4Symlink, ext4Unlink } from "../fs/namei-ops.js";
import { ROOT_INO } from "../fs/super.js";
import { readSymlink } from "../fs/symlink.js";
import type { VfsContext } from "./context.js";
import { O_CREAT, O_DIRECTORY, O_EXCL, O_NOATIME, O_NOFOLLOW, O_TRUNC, fileMode, wantsWrite } from "./open-flags.js";
import { isDot, isDotDot, pathBytes, pathOf, type PathLike, pathText, resolve, resolveParent } from "./path-walk.js";
import { checkAccess, R_OK, W_OK, X_OK } from "./permission.js";

const MAX_SYMLINKS = 40;
/** PATH_MAX counts the terminating NUL: a symlink target is at most 4095 bytes. */
const SYMLINK_MAX = 4095;
const S_ISVTX = 0o1000;
const S_ISUID = 0o4000;
const S_ISGID = 0o2000;

const fail = (code: string, text: string): never => { throw new Ext4Error(code, text); };


function isDotName(n: Uint8Array | undefined): boolean { return n === undefined || isDot(n) || isDotDot(n); }

/** mnt_want_write. */
function wantWrite(ctx: VfsContext): void {
  if (ctx.fs.readOnly) fail("EROFS", "read-only file system");
}

/** may_create: write and search permission on the directory. */
function mayCreate(ctx: VfsContext, dir: Inode): void {
  checkAccess(ctx.fs, dir, W_OK | X_OK);
}

/**
 * may_delete: write and search on the directory; in a sticky directory only
 * the owner of the file or of the directory (or root) removes it; immutable
 * and append-only files stay.
 */
function mayDelete(ctx: VfsContext, dir: Inode, victim: Inode): void {
  checkAccess(ctx.fs, dir, W_OK | X_OK);
  if (dir.flags & INODE_FLAGS.APPEND) fail("EPERM", "operation not permitted");
  const { uid } = ctx.cred();
  if (dir.mode & S_ISVTX && uid !== 0 && uid !== victim.uid && uid !== dir.uid) fail("EPERM", "operation not permitted");
  if (victim.flags & (INODE_FLAGS.IMMUTABLE | INODE_FLAGS.APPEND)) fail("EPERM", "operation not permitted");
}

function childIno(ctx: VfsContext, dir: Inode, name: Uint8Array): number {
  return lookup(ctx.fs, dir, name);
}

/** Runs fn with the directory held (iget), so the fs operation changes the one in-core object of its number. */
function withDir<T>(ctx: VfsContext, dir: Inode, fn: (d: Ext4Inode) => T): T {
  const d = ctx.fs.iget(dir.ino);
  try {
    return fn(d);
  } finally {
    ctx.fs.iput(d);
  }
}

/** The creator for namei-ops: the umask is applied there, where a default ACL can replace it (posix_acl_create). */
function cred(ctx: VfsContext) {
  const c = ctx.cred();
  // groups stays lazy: read only if a setgid directory or the root reserve asks (see context.ts).
  return { uid: c.uid, gid: c.gid, get groups() { return c.groups; }, umask: ctx.umask };
}

export interface Opened {
  /** The inode, referenced (the open file's iget). */
  inode: Ext4Inode;
  created: boolean;
}

/**
 * open(2) of a path (path_openat): lookup or create the last component,
 * following symlinks as the flags say (O_CREAT follows a dangling one and
 * creates its target, as Linux does), then may_open's checks. O_TRUNC is the
 * caller's (it needs the buffered path).
 */
export function openPath(ctx: VfsContext, path: PathLike, flags: number, mode: number): Opened {
  const fs = ctx.fs;
  const shown = pathText(path);
  let inode: Inode;
  if (flags & O_CREAT && flags & O_DIRECTORY) fail("EINVAL", "invalid argument");
  if (!(flags & O_CREAT)) {
    inode = resolve(fs, path, !(flags & O_NOFOLLOW), "open").inode;
  } else {
    let cur: Uint8Array = pathBytes(path);
    for (let links = 0; ; ) {
      const p = resolveParent(fs, cur, "open", shown);
      if (isDotName(p.name) || p.trailingSlash) fail("EISDIR", "illegal operation on a directory");
      const ino = childIno(ctx, p.dir, p.name!);
      if (ino === 0) {
        wantWrite(ctx);
        mayCreate(ctx, p.dir);
        const made = withDir(ctx, p.dir, (d) => ext4Create(fs, d, p.name!, S_IFREG | (mode & 0o7777), cred(ctx)));
        return { inode: made, created: true };
      }
      if (flags & O_EXCL) fail("EEXIST", "file already exists");
      const child = fs.inodeByEntry(ino);
      if (isLnk(child) && !(flags & O_NOFOLLOW)) {
        if (++links > MAX_SYMLINKS) fail("ELOOP", "too many symbolic links encountered");
        const target = readSymlink(fs, child);
        if (target.length === 0) fail("ENOENT", "no such file or directory");
        cur = target[0] === 0x2f ? target : pathOf(p.dirPath, target);
        continue;
      }
      inode = child;
      break;
    }
  }
  mayOpen(ctx, inode, flags);
  return { inode: fs.iget(inode.ino), created: false };
}

/** may_open for an inode that exists: the file type against the flags, then the access bits. */
function mayOpen(ctx: VfsContext, inode: Inode, flags: number): void {
  if (isLnk(inode)) fail("ELOOP", "too many symbolic links encountered");
  if (flags & O_DIRECTORY && !isDir(inode)) fail("ENOTDIR", "not a directory");
  if (isDir(inode) && (flags & O_CREAT || wantsWrite(flags))) fail("EISDIR", "illegal operation on a directory");
  const m = fileMode(flags);
  let want = 0;
  if (m.readable) want |= R_OK;
  if (wantsWrite(flags)) want |= W_OK;
  checkAccess(ctx.fs, inode, want);
  if (inode.flags & INODE_FLAGS.APPEND && ((m.writable && !m.append) || flags & O_TRUNC)) fail("EPERM", "operation not permitted");
  if (flags & O_NOATIME) {
    const { uid } = ctx.cred();
    if (uid !== 0 && uid !== inode.uid) fail("EPERM", "operation not permitted");
  }
}

/** The file mode bits mkdir passes down (the umask is the fs's, see cred). */
function dirMode(mode: number): number {
  return S_IFDIR | (mode & 0o1777);
}

/** mkdir(2). */
export function vfsMkdir(ctx: VfsContext, path: PathLike, mode: number): void {
  const p = resolveParent(ctx.fs, path, "mkdir");
  if (isDotName(p.name) || childIno(ctx, p.dir, p.name!) !== 0) fail("EEXIST", "file already exists");
  wantWrite(ctx);
  mayCreate(ctx, p.dir);
  const made = withDir(ctx, p.dir, (d) => ext4Mkdir(ctx.fs, d, p.name!, dirMode(mode), cred(ctx)));
  ctx.fs.iput(made);
}

/**
 * mkdir -p as node's MKDirpSync: each missing component made in turn;
 * returns the first directory made (undefined when all existed). A
 * component that is not a directory is ENOTDIR, the path itself EEXIST.
 */
export function vfsMkdirRecursive(ctx: VfsContext, path: PathLike, mode: number): string | undefined {
  const bytes = pathBytes(path);
  const text = pathText(path);
  const ends: number[] = [];
  for (let i = 0; i < bytes.length; i++) {
    if (bytes[i] !== 0x2f && (i + 1 === bytes.length || bytes[i + 1] === 0x2f)) ends.push(i + 1);
  }
  if (ends.length === 0) {
    if (bytes.length === 0) fail("ENOENT", "no such file or directory");
    return undefined; // "/"
  }
  let first: string | undefined;
  for (let k = 0; k < ends.length; k++) {
    const prefix = bytes.subarray(0, ends[k]);
    let found: Inode | undefined;
    try {
      found = resolve(ctx.fs, prefix, true, "mkdir", text).inode;
    } catch (e) {
      if (!(e instanceof Ext4Error && e.code === "ENOENT")) throw e;
    }
    if (found) {
      if (!isDir(found)) fail(k === ends.length - 1 ? "EEXIST" : "ENOTDIR", k === ends.length - 1 ? "file already exists" : "not a directory");
      continue;
    }
    const p = resolveParent(ctx.fs, prefix, "mkdir", text);
    if (isDotName(p.name)) continue;
    wantWrite(ctx);
    mayCreate(ctx, p.dir);
    const made = withDir(ctx, p.dir, (d) => ext4Mkdir(ctx.fs, d, p.name!, dirMode(mode), cred(ctx)));
    ctx.fs.iput(made);
    first ??= typeof path === "string" ? path.slice(0, prefixChars(path, ends[k])) : new TextDecoder().decode(prefix);
  }
  return first;
}

/** The number of UTF-16 units of `s` whose UTF-8 encoding is `bytes` long. */
function prefixChars(s: string, bytes: number): number {
  const enc = new TextEncoder();
  let n = 0;
  let i = 0;
  for (const ch of s) {
    if (n >= bytes) break;
    n += enc.encode(ch).length;
    i += ch.length;
  }
  return i;
}

/** rmdir(2). */
export function vfsRmdir(ctx: VfsContext, path: PathLike): void {
  const p = resolveParent(ctx.fs, path, "rmdir");
  if (p.name === undefined) fail("EBUSY", "resource busy or locked");
  if (isDot(p.name!)) fail("EINVAL", "invalid argument");
  if (isDotDot(p.name!)) fail("ENOTEMPTY", "directory not empty");
  wantWrite(ctx);
  const ino = childIno(ctx, p.dir, p.name!);
  if (ino === 0) fail("ENOENT", "no such file or directory");
  const victim = ctx.fs.inodeByEntry(ino);
  // may_delete: permission and EPERM before the victim's type.
  mayDelete(ctx, p.dir, victim);
  if (!isDir(victim)) fail("ENOTDIR", "not a directory");
  if (ino === ROOT_INO) fail("EBUSY", "resource busy or locked");
  const gone = withDir(ctx, p.dir, (d) => ext4Rmdir(ctx.fs, d, p.name!));
  if (gone) ctx.fs.iput(gone);
}

/** unlink(2): an open file stays readable until its last close (the fs frees it at the final iput). */
export function vfsUnlink(ctx: VfsContext, path: PathLike): void {
  const p = resolveParent(ctx.fs, path, "unlink");
  if (isDotName(p.name)) fail("EISDIR", "illegal operation on a directory");
  wantWrite(ctx);
  const ino = childIno(ctx, p.dir, p.name!);
  if (ino === 0) fail("ENOENT", "no such file or directory");
  const victim = ctx.fs.inodeByEntry(ino);
  // do_unlinkat's "slashes": a trailing slash is judged before any permission; else may_delete's order.
  if (p.trailingSlash) fail(isDir(victim) ? "EISDIR" : "ENOTDIR", isDir(victim) ? "illegal operation on a directory" : "not a directory");
  mayDelete(ctx, p.dir, victim);
  if (isDir(victim)) fail("EISDIR", "illegal operation on a directory");
  const gone = withDir(ctx, p.dir, (d) => ext4Unlink(ctx.fs, d, p.name!));
  if (gone) ctx.fs.iput(gone);
}

export interface RenameFlags { noreplace?: boolean; exchange?: boolean; whiteout?: boolean }

/** Whether directory `anc` is `dir` or one of its ancestors (the walk up through ".."). */
function isAncestor(ctx: VfsContext, anc: number, dir: Inode): boolean {
  const fs = ctx.fs;
  let cur = dir;
  for (let depth = 0; depth < 65536; depth++) {
    if (cur.ino === anc) return true;
    if (cur.ino === ROOT_INO) return false;
    const up = lookup(fs, cur, Uint8Array.of(0x2e, 0x2e));
    if (up === 0 || up === cur.ino) return false;
    cur = fs.inode(up);
  }
  return false;
}

/** rename(2) / renameat2 with its flags. Replacing a directory needs it empty (the fs says ENOTEMPTY). */
export function vfsRename(ctx: VfsContext, from: PathLike, to: PathLike, flags: RenameFlags = {}): void {
  const fs = ctx.fs;
  if (flags.exchange && (flags.noreplace || flags.whiteout)) fail("EINVAL", "invalid argument");
  const po = resolveParent(fs, from, "rename");
  const pn = resolveParent(fs, to, "rename");
  if (isDotName(po.name) || isDotName(pn.name)) fail("EBUSY", "resource busy or locked");
  wantWrite(ctx);
  const oldIno = childIno(ctx, po.dir, po.name!);
  if (oldIno === 0) fail("ENOENT", "no such file or directory");
  const src = fs.inodeByEntry(oldIno);
  const newIno = childIno(ctx, pn.dir, pn.name!);
  if (flags.noreplace && newIno !== 0) fail("EEXIST", "file already exists");
  if (flags.exchange && newIno === 0) fail("ENOENT", "no such file or directory");
  const tgt = newIno ? fs.inodeByEntry(newIno) : undefined;
  if (!isDir(src) && (po.trailingSlash || (pn.trailingSlash && !flags.exchange))) fail("ENOTDIR", "not a directory");
  // lock_rename's traps: the source an ancestor of the new parent, the target an ancestor of the old one.
  if (po.dir.ino !== pn.dir.ino) {
    if (isDir(src) && isAncestor(ctx, src.ino, pn.dir)) fail("EINVAL", "invalid argument");
    if (tgt && isDir(tgt) && isAncestor(ctx, tgt.ino, po.dir)) fail("ENOTEMPTY", "directory not empty");
  }
  if (oldIno === newIno) return; // vfs_rename: source and target the same inode
  // vfs_rename's may_delete of each name: permission, sticky and EPERM before the target's type.
  mayDelete(ctx, po.dir, src);
  if (tgt) {
    mayDelete(ctx, pn.dir, tgt);
    if (!flags.exchange && isDir(src) && !isDir(tgt)) fail("ENOTDIR", "not a directory");
    if (!flags.exchange && !isDir(src) && isDir(tgt)) fail("EISDIR", "illegal operation on a directory");
  } else {
    mayCreate(ctx, pn.dir);
  }
  // A directory moving to another parent has its ".." rewritten: it needs write permission itself.
  if (isDir(src) && po.dir.ino !== pn.dir.ino) checkAccess(fs, src, W_OK);
  withDir(ctx, po.dir, (od) => withDir(ctx, pn.dir, (nd) => {
    ext4Rename(fs, od, po.name!, nd, pn.name!, flags, { allocDaBlocks: (i: Ext4Inode) => ctx.io(i).allocDaBlocks(i) }, cred(ctx));
  }));
}

/** link(2) (linkat without AT_SYMLINK_FOLLOW: a symlink is linked itself). */
export function vfsLink(ctx: VfsContext, existing: PathLike, newPath: PathLike): void {
  const fs = ctx.fs;
  const src = resolve(fs, existing, false, "link").inode;
  const pn = resolveParent(fs, newPath, "link");
  if (isDotName(pn.name) || childIno(ctx, pn.dir, pn.name!) !== 0) fail("EEXIST", "file already exists");
  if (pn.trailingSlash) fail("ENOENT", "no such file or directory");
  wantWrite(ctx);
  mayCreate(ctx, pn.dir);
  if (isDir(src)) fail("EPERM", "operation not permitted");
  if (src.flags & (INODE_FLAGS.IMMUTABLE | INODE_FLAGS.APPEND)) fail("EPERM", "operation not permitted");
  mayLinkat(ctx, src);
  const inode = fs.iget(src.ino);
  try {
    fs.iput(withDir(ctx, pn.dir, (d) => ext4Link(fs, inode, d, pn.name!)));
  } finally {
    fs.iput(inode);
  }
}

/**
 * may_linkat with fs.protected_hardlinks = 1 (what distributions set): a
 * caller that neither owns the file nor is root links only a regular file
 * without set-ID bits that it may read and write.
 */
function mayLinkat(ctx: VfsContext, src: Inode): void {
  const { uid } = ctx.cred();
  if (uid === 0 || uid === src.uid) return;
  const safe = (src.mode & S_IFMT) === S_IFREG && !(src.mode & S_ISUID) && (src.mode & (S_ISGID | 0o010)) !== (S_ISGID | 0o010);
  if (!safe) fail("EPERM", "operation not permitted");
  try {
    checkAccess(ctx.fs, src, R_OK | W_OK);
  } catch {
    fail("EPERM", "operation not permitted");
  }
}

/** symlink(2): the target is stored as given (bytes), never resolved. */
export function vfsSymlink(ctx: VfsContext, target: PathLike, path: PathLike): void {
  const t = pathBytes(target);
  const pn = resolveParent(ctx.fs, path, "symlink");
  if (isDotName(pn.name) || childIno(ctx, pn.dir, pn.name!) !== 0) fail("EEXIST", "file already exists");
  if (pn.trailingSlash) fail("ENOENT", "no such file or directory");
  wantWrite(ctx);
  mayCreate(ctx, pn.dir);
  if (t.length === 0) fail("ENOENT", "no such file or directory");
  if (t.length > SYMLINK_MAX) fail("ENAMETOOLONG", "name too long");
  const made = withDir(ctx, pn.dir, (d) => ext4Symlink(ctx.fs, d, pn.name!, t, cred(ctx)));
  ctx.fs.iput(made);
}

/** mknod(2): regular files, character and block devices (root only), FIFOs and sockets. */
export function vfsMknod(ctx: VfsContext, path: PathLike, mode: number, dev: number): void {
  const fmt = (mode & S_IFMT) || S_IFREG;
  if (![S_IFREG, S_IFCHR, S_IFBLK, S_IFIFO, S_IFSOCK].includes(fmt)) fail("EINVAL", "invalid argument");
  const pn = resolveParent(ctx.fs, path, "mknod");
  if (isDotName(pn.name) || childIno(ctx, pn.dir, pn.name!) !== 0) fail("EEXIST", "file already exists");
  if (pn.trailingSlash) fail("ENOENT", "no such file or directory");
  wantWrite(ctx);
  if ((fmt === S_IFCHR || fmt === S_IFBLK) && ctx.cred().uid !== 0) fail("EPERM", "operation not permitted");
  mayCreate(ctx, pn.dir);
  const perm = mode & 0o7777;
  const made = withDir(ctx, pn.dir, (d) => fmt === S_IFREG
    ? ext4Create(ctx.fs, d, pn.name!, S_IFREG | perm, cred(ctx))
    : ext4Mknod(ctx.fs, d, pn.name!, fmt | perm, dev, cred(ctx)));
  ctx.fs.iput(made);
}
