// The namespace operations (fs/ext4/namei.c, ext4_dir_inode_operations):
// create, mknod, mkdir, symlink, link, unlink, rmdir and rename with its
// flags. Each starts and stops its own handle with the kernel's credits, does
// the checks the VFS and ext4 do that are not about access bits (those are
// the VFS's, host/vfs/permission.ts), and returns in-core inodes referenced:
// the caller iputs them. An inode left without links goes on the orphan list
// in the handle that dropped its last link; evict frees it at the final iput.

import { autoDaAlloc } from "./delalloc.js";
import { corrupted, Ext4Error } from "../errors.js";
import { type AclEntry, ACL_GROUP, ACL_GROUP_OBJ, ACL_MASK, ACL_OTHER, ACL_USER, ACL_USER_OBJ, aclFromDisk, aclToDisk } from "../format/acl.js";
import { u16, u32 } from "../format/bytes.js";
import { FT } from "../format/dirent.js";
import { INCOMPAT, RO_COMPAT } from "../format/features.js";
import {
  GOOD_OLD_INODE_SIZE, INODE_FLAGS, isDir, isReg, S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT, S_IFREG, S_IFSOCK,
} from "../format/inode.js";
import { XATTR_INDEX_POSIX_ACL_ACCESS, XATTR_INDEX_POSIX_ACL_DEFAULT, XATTR_MAGIC } from "../format/xattr.js";
import type { Handle } from "../journal/handle.js";
import { lookup, readDir } from "./dir.js";
import { newInode } from "./ialloc.js";
import { type Ext4Inode, setInodeSize } from "./inode.js";
import { markInodeDirty } from "./inode-write.js";
import { setMayInlineData } from "./inline-write.js";
import {
  addEntry, addEntryCredits, checkNewName, decDirLinks, deleteEntry, deleteEntryCredits, dirLinkMax, EXT4_LINK_MAX, EXT4_NAME_LEN, incDirLinks,
  readDotDot, renameCredits, setDotDot, setEntry,
} from "./namei.js";
import { appendDirBlock } from "./namei-alloc.js";
import { orphanAdd } from "./orphan.js";
import { holdsEaInodeRefs } from "./write-gate.js";
import { ROOT_INO, type Ext4 } from "./super.js";
import { inodeXattrs } from "./xattr.js";
import { currentTime, setXattr, XATTR_SET_CREDITS } from "./xattr-write.js";

/** Who creates: fsuid/fsgid and groups (inode_init_owner's setgid rule); umask as posix_acl_create applies it. */
export interface Cred {
  uid: number;
  gid: number;
  groups?: number[];
  /** Applied here when the directory has no default ACL (ext4 is IS_POSIXACL: the VFS leaves it to the fs). Default 0. */
  umask?: number;
}

export interface RenameFlags {
  /** RENAME_NOREPLACE: EEXIST if the new name exists. */
  noreplace?: boolean;
  /** RENAME_EXCHANGE: both names exist and swap. */
  exchange?: boolean;
  /** RENAME_WHITEOUT: the old name becomes a whiteout (a character device 0:0). */
  whiteout?: boolean;
}

export interface RenameHooks {
  /** auto_da_alloc: the source's delayed blocks allocated before it replaces a regular file (ext4_alloc_da_blocks). */
  allocDaBlocks?(inode: Ext4Inode): void;
}

/** EXT4_INDEX_EXTRA_TRANS_BLOCKS + EXT4_DATA_TRANS_BLOCKS + 3 (inode, bitmap, descriptor): ext4_create/mkdir/mknod/symlink. */
function createCredits(fs: Ext4): number { return addEntryCredits(fs) + 3; }

const S_IALLUGO = 0o7777;
const decoder = new TextDecoder();
const pathOf = (name: Uint8Array) => decoder.decode(name);

function err(code: string, message: string, ino: number, name?: Uint8Array): Ext4Error {
  return new Ext4Error(code, message, { ino, path: name ? pathOf(name) : undefined });
}

function isDotName(name: Uint8Array): boolean {
  return (name.length === 1 && name[0] === 0x2e) || (name.length === 2 && name[0] === 0x2e && name[1] === 0x2e);
}

/** The file type a directory entry records for `mode`. */
export function fileTypeOf(mode: number): number {
  switch (mode & S_IFMT) {
    case S_IFREG: return FT.REG;
    case S_IFDIR: return FT.DIR;
    case S_IFCHR: return FT.CHR;
    case S_IFBLK: return FT.BLK;
    case S_IFIFO: return FT.FIFO;
    case S_IFSOCK: return FT.SOCK;
    case S_IFLNK: return FT.SYMLINK;
    default: return FT.UNKNOWN;
  }
}

/** The name checks of the lookup (ext4_lookup's ENAMETOOLONG) and of the path walk. */
function checkName(dir: Ext4Inode, name: Uint8Array): void {
  if (name.length === 0) throw err("ENOENT", "empty name", dir.ino, name);
  if (name.length > EXT4_NAME_LEN) throw err("ENAMETOOLONG", "file name too long", dir.ino, name);
  if (name.includes(0x2f) || name.includes(0)) throw err("EINVAL", "a name may not contain '/' or NUL", dir.ino, name);
}

/** The directory is one names can be looked up in: a directory, not removed. */
function checkDir(dir: Ext4Inode, name: Uint8Array): void {
  if (!isDir(dir)) throw err("ENOTDIR", "not a directory", dir.ino, name);
  if (dir.linksCount === 0) throw err("ENOENT", "directory has been removed", dir.ino, name);
}

/** may_create: the new name is free, the directory writable (not immutable), its key there. */
function checkCreate(fs: Ext4, dir: Ext4Inode, name: Uint8Array): void {
  checkDir(dir, name);
  checkName(dir, name);
  if (isDotName(name) || lookup(fs, dir, name)) throw err("EEXIST", "file exists", dir.ino, name);
  if (dir.flags & INODE_FLAGS.IMMUTABLE) throw err("EPERM", "directory is immutable", dir.ino, name);
  if (dir.flags & INODE_FLAGS.ENCRYPT) throw err("ENOKEY", "required key not available (encrypted directory)", dir.ino, name);
  // addEntry's own refusals (casefolded directories take ASCII names only), before anything is allocated.
  checkNewName(fs, dir, name);
}

/** The last link of an inode whose xattrs reference ea_inodes is not dropped (eviction could not release them). */
function checkLastLink(fs: Ext4, inode: Ext4Inode, name: Uint8Array, links = 1): void {
  if (inode.linksCount <= links && holdsEaInodeRefs(fs, inode)) throw err("EOPNOTSUPP", "the last link of an inode with ea_inode xattrs is not removed", inode.ino, name);
}

/** may_delete's flag checks on the directory and the victim (the access bits are the VFS's). */
function checkDelete(dir: Ext4Inode, victim: Ext4Inode, name: Uint8Array): void {
  if (dir.flags & (INODE_FLAGS.IMMUTABLE | INODE_FLAGS.APPEND)) throw err("EPERM", "directory is immutable or append-only", dir.ino, name);
  if (victim.flags & (INODE_FLAGS.IMMUTABLE | INODE_FLAGS.APPEND)) throw err("EPERM", "file is immutable or append-only", victim.ino, name);
}

/** The inode `name` in `dir` names, referenced (iget); ENOENT if none. */
function igetName(fs: Ext4, dir: Ext4Inode, name: Uint8Array): Ext4Inode {
  const ino = lookup(fs, dir, name);
  if (!ino) throw err("ENOENT", "no such file or directory", dir.ino, name);
  const inode = fs.iget(ino);
  if (inode.linksCount === 0) {
    fs.iput(inode);
    throw corrupted(`entry '${pathOf(name)}' names deleted inode ${ino}`, { ino: dir.ino });
  }
  return inode;
}

// ---- default ACL inheritance (ext4_init_acl / posix_acl_create) ----

function defaultAcl(fs: Ext4, dir: Ext4Inode): AclEntry[] | null {
  const x = inodeXattrs(fs, dir).find((a) => a.nameIndex === XATTR_INDEX_POSIX_ACL_DEFAULT && a.rawName.length === 0);
  return x ? aclFromDisk(x.value, { ino: dir.ino }) : null;
}

/**
 * posix_acl_create_masq: the inherited ACL masked by the requested mode and
 * the mode by the ACL; true when the ACL says more than the mode (it is kept).
 */
function aclCreateMasq(acl: AclEntry[], mode: number): { mode: number; keep: boolean } {
  let m = mode & 0o777;
  let keep = false;
  let group: AclEntry | undefined;
  let mask: AclEntry | undefined;
  for (const e of acl) {
    switch (e.tag) {
      case ACL_USER_OBJ:
        e.perm &= (m >> 6) | ~7;
        m &= (e.perm << 6) | ~0o700;
        break;
      case ACL_USER: case ACL_GROUP: keep = true; break;
      case ACL_GROUP_OBJ: group = e; break;
      case ACL_OTHER:
        e.perm &= m | ~7;
        m &= e.perm | ~7;
        break;
      case ACL_MASK: mask = e; keep = true; break;
      default: throw new Ext4Error("EIO", `default ACL entry with tag 0x${e.tag.toString(16)}`);
    }
  }
  const g = mask ?? group;
  if (!g) throw new Ext4Error("EIO", "default ACL without a group entry");
  g.perm &= (m >> 3) | ~7;
  m &= (g.perm << 3) | ~0o070;
  return { mode: (mode & ~0o777) | (m & 0o777), keep };
}

interface AclPlan { mode: number; access: AclEntry[] | null; dflt: AclEntry[] | null }

/** posix_acl_create: the mode of the new inode and the ACLs it inherits (symlinks none, and no umask). */
function planAcls(fs: Ext4, dir: Ext4Inode, mode: number, umask: number): AclPlan {
  if ((mode & S_IFMT) === S_IFLNK) return { mode, access: null, dflt: null };
  const p = defaultAcl(fs, dir);
  if (!p) return { mode: mode & ~(umask & 0o777), access: null, dflt: null };
  const clone = p.map((e) => ({ ...e }));
  const r = aclCreateMasq(clone, mode);
  return { mode: r.mode, access: r.keep ? clone : null, dflt: (mode & S_IFMT) === S_IFDIR ? p : null };
}

function aclCredits(plan: AclPlan): number {
  return (plan.access ? XATTR_SET_CREDITS : 0) + (plan.dflt ? XATTR_SET_CREDITS : 0);
}

/**
 * ext4_new_inode + ext4_init_acl: the inode allocated in `handle`, owner and
 * mode set, inherited ACLs written (default first, as the kernel).
 */
function allocInode(handle: Handle, fs: Ext4, dir: Ext4Inode, plan: AclPlan, name: Uint8Array, cred: Cred): Ext4Inode {
  const inode = newInode(handle, fs, dir, plan.mode, { uid: cred.uid, gid: cred.gid, groups: cred.groups, name });
  try {
    if (plan.dflt) setXattr(handle, fs, inode, XATTR_INDEX_POSIX_ACL_DEFAULT, "", aclToDisk(plan.dflt), { create: true });
    if (plan.access) setXattr(handle, fs, inode, XATTR_INDEX_POSIX_ACL_ACCESS, "", aclToDisk(plan.access), { create: true });
  } catch (e) {
    discardNewInode(handle, fs, inode);
    throw e;
  }
  return inode;
}

/** A new inode that could not be linked: no links, on the orphan list, freed by evict at the iput (ext4_mkdir's out_clear_inode). */
function discardNewInode(handle: Handle, fs: Ext4, inode: Ext4Inode): void {
  try {
    inode.linksCount = 0;
    orphanAdd(handle, fs, inode);
    markInodeDirty(handle, fs, inode);
  } finally {
    fs.iput(inode);
  }
}

/** ext4_add_nondir: the entry, then the inode written again; on failure the inode is discarded. */
function addNondir(handle: Handle, fs: Ext4, dir: Ext4Inode, name: Uint8Array, inode: Ext4Inode): Ext4Inode {
  try {
    addEntry(handle, fs, dir, name, inode.ino, fileTypeOf(inode.mode));
    markInodeDirty(handle, fs, inode);
  } catch (e) {
    discardNewInode(handle, fs, inode);
    throw e;
  }
  return inode;
}

/**
 * One handle for the op. A DIRSYNC directory (chattr +D) makes the op
 * synchronous: its transaction is committed before the op returns
 * (ext4_handle_sync).
 */
function withHandle<T>(fs: Ext4, credits: number, fn: (h: Handle) => T, dirs: Ext4Inode[] = []): T {
  const h = fs.startHandle(credits);
  let r: T;
  try {
    r = fn(h);
  } finally {
    h.stop();
  }
  if (h.journaled && dirs.some((d) => d.flags & INODE_FLAGS.DIRSYNC)) fs.syncTid(h.tid);
  return r;
}

// ---- create, mknod, mkdir, symlink, link ----

/** ext4_create: a regular file `name` in `dir`, referenced. */
export function ext4Create(fs: Ext4, dir: Ext4Inode, name: Uint8Array, mode: number, cred: Cred): Ext4Inode {
  checkCreate(fs, dir, name);
  const plan = planAcls(fs, dir, S_IFREG | (mode & S_IALLUGO), cred.umask ?? 0);
  return withHandle(fs, createCredits(fs) + aclCredits(plan), (h) => addNondir(h, fs, dir, name, setMayInlineData(fs, allocInode(h, fs, dir, plan, name, cred))), [dir]);
}

/** Userspace dev_t (glibc's makedev, as stat reports it) to major and minor; the kernel's dev_t is 32 bits (EINVAL past). */
function devParts(rdev: number): { major: number; minor: number } {
  if (!Number.isSafeInteger(rdev) || rdev < 0 || rdev > 0xffffffff) throw new Ext4Error("EINVAL", `device number ${rdev} does not fit 32 bits`);
  return { major: (rdev >>> 8) & 0xfff, minor: (rdev & 0xff) | ((rdev >>> 12) & 0xfff00) };
}

/** ext4_do_update_inode's device number: the old 16-bit form where it fits, else the new 32-bit one in i_block[1]. */
function encodeRdev(iBlock: Uint8Array, rdev: number): void {
  const { major, minor } = devParts(rdev);
  iBlock.fill(0, 0, 12);
  const dv = new DataView(iBlock.buffer, iBlock.byteOffset, 12);
  if (major < 256 && minor < 256) dv.setUint32(0, (major << 8) | minor, true);
  else dv.setUint32(4, ((minor & 0xff) | (major << 8) | ((minor & ~0xff) << 12)) >>> 0, true);
}

/**
 * ext4_mknod (and vfs_mknod's type rules): a character or block device with
 * `rdev`, a FIFO or a socket; type 0 or S_IFREG makes a regular file;
 * S_IFDIR is EPERM, other types EINVAL.
 */
export function ext4Mknod(fs: Ext4, dir: Ext4Inode, name: Uint8Array, mode: number, rdev: number, cred: Cred): Ext4Inode {
  const type = mode & S_IFMT;
  if (type === 0 || type === S_IFREG) return ext4Create(fs, dir, name, mode, cred);
  if (type === S_IFDIR) throw err("EPERM", "mknod does not make directories", dir.ino, name);
  if (type !== S_IFCHR && type !== S_IFBLK && type !== S_IFIFO && type !== S_IFSOCK) throw err("EINVAL", `mknod of file type 0o${type.toString(8)}`, dir.ino, name);
  checkCreate(fs, dir, name);
  return makeSpecial(fs, dir, name, mode, type === S_IFCHR || type === S_IFBLK ? rdev : 0, cred, createCredits(fs));
}

function makeSpecial(fs: Ext4, dir: Ext4Inode, name: Uint8Array, mode: number, rdev: number, cred: Cred, credits: number): Ext4Inode {
  const plan = planAcls(fs, dir, mode & (S_IFMT | S_IALLUGO), cred.umask ?? 0);
  return withHandle(fs, credits + aclCredits(plan), (h) => {
    const inode = allocInode(h, fs, dir, plan, name, cred);
    // init_special_inode: the device number in i_block, no blocks.
    if (rdev) encodeRdev(inode.iBlock, rdev);
    return addNondir(h, fs, dir, name, inode);
  }, [dir]);
}

/**
 * Room in the inode's body for an empty system.data xattr: ext4_create_inline_data
 * sets it there only (ext4_xattr_ibody_set); inherited ACLs may have taken the space.
 */
function hasInlineRoom(fs: Ext4, inode: Ext4Inode): boolean {
  const sb = fs.sb;
  if (!(sb.featureIncompat & INCOMPAT.INLINE_DATA) || sb.inodeSize <= GOOD_OLD_INODE_SIZE) return false;
  const raw = inode.raw;
  const start = GOOD_OLD_INODE_SIZE + inode.extraIsize;
  const first = start + 4;
  if (first + 4 > sb.inodeSize) return false;
  let minValue = sb.inodeSize;
  let end = first;
  if (u32(raw, start) === XATTR_MAGIC) {
    while (end + 4 <= sb.inodeSize && u32(raw, end) !== 0) {
      const nameLen = raw[end];
      const valueSize = u32(raw, end + 8);
      if (valueSize && u32(raw, end + 4) === 0) minValue = Math.min(minValue, first + u16(raw, end + 2));
      end += (16 + nameLen + 3) & ~3;
    }
  }
  // EXT4_XATTR_LEN(4) for "data", with the four zero bytes that end the entries.
  return minValue - end - 4 >= 20;
}

const SYSTEM_DATA_INDEX = 7;
/** EXT4_MIN_INLINE_DATA_SIZE: i_block's 60 bytes. */
const INLINE_SIZE = 60;

/**
 * ext4_init_new_dir: an inline directory where inline_data allows it
 * (ext4_try_create_inline_dir: the parent's number, then one empty entry to
 * byte 60), else block 0 with "." and ".." (ext4_init_dot_dotdot).
 */
function initNewDir(handle: Handle, fs: Ext4, dir: Ext4Inode, inode: Ext4Inode): void {
  const bs = fs.sb.blockSize;
  inode.linksCount = 2;
  if (hasInlineRoom(fs, inode)) {
    setXattr(handle, fs, inode, SYSTEM_DATA_INDEX, "data", new Uint8Array(0));
    const b = inode.iBlock;
    b.fill(0);
    const dv = new DataView(b.buffer, b.byteOffset, INLINE_SIZE);
    dv.setUint32(0, dir.ino, true);
    dv.setUint16(4 + 4, INLINE_SIZE - 4, true);
    inode.flags = (inode.flags & ~INODE_FLAGS.EXTENTS) | INODE_FLAGS.INLINE_DATA;
    setInodeSize(inode, INLINE_SIZE);
    return;
  }
  const bh = appendDirBlock(handle, fs, inode, 0);
  try {
    handle.getWriteAccess(bh);
    const b = bh.data;
    const tail = fs.metadataCsum ? 12 : 0;
    const ft = fs.sb.featureIncompat & INCOMPAT.FILETYPE ? FT.DIR : 0;
    const dv = new DataView(b.buffer, b.byteOffset, bs);
    b.fill(0);
    dv.setUint32(0, inode.ino, true); dv.setUint16(4, 12, true); b[6] = 1; b[7] = ft; b[8] = 0x2e;
    dv.setUint32(12, dir.ino, true); dv.setUint16(16, recLenToDisk(bs - 12 - tail, bs), true); b[18] = 2; b[19] = ft; b[20] = 0x2e; b[21] = 0x2e;
    if (tail) {
      dv.setUint16(bs - 12 + 4, 12, true);
      b[bs - 12 + 7] = 0xde;
      dv.setUint32(bs - 4, fs.csum.dirBlock(fs.inodeSeed(inode), b), true);
    }
    handle.dirtyMetadata(bh);
  } finally {
    fs.bcache.brelse(bh);
  }
  setInodeSize(inode, bs);
}

/** ext4_rec_len_to_disk for the 64 KiB block case. */
function recLenToDisk(len: number, bs: number): number {
  if (len < 65536) return len;
  return len === bs ? (bs === 65536 ? 65535 : 0) : (len & 65532) | ((len >> 16) & 3);
}

/** ext4_mkdir: a directory `name` in `dir`, referenced; EMLINK when `dir` has EXT4_LINK_MAX links and cannot go to 1. */
export function ext4Mkdir(fs: Ext4, dir: Ext4Inode, name: Uint8Array, mode: number, cred: Cred): Ext4Inode {
  checkCreate(fs, dir, name);
  if (dirLinkMax(fs, dir)) throw err("EMLINK", "too many links", dir.ino, name);
  // vfs_mkdir keeps only the permission and sticky bits; a setgid parent adds S_ISGID (inode_init_owner).
  const plan = planAcls(fs, dir, S_IFDIR | (mode & 0o1777), cred.umask ?? 0);
  return withHandle(fs, createCredits(fs) + aclCredits(plan), (h) => {
    const inode = allocInode(h, fs, dir, plan, name, cred);
    try {
      initNewDir(h, fs, dir, inode);
      markInodeDirty(h, fs, inode);
      addEntry(h, fs, dir, name, inode.ino, FT.DIR);
    } catch (e) {
      discardNewInode(h, fs, inode);
      throw e;
    }
    incDirLinks(fs, dir);
    markInodeDirty(h, fs, dir);
    return inode;
  }, [dir]);
}

/**
 * ext4_symlink: a target of up to 59 bytes goes in i_block (a fast symlink,
 * no extent flag); a longer one in block 0 (ext4_init_symlink_block, through
 * the buffer cache and the journal as the kernel does). The kernel writes no
 * inline-data symlinks since ext4_init_symlink_block, so neither do we.
 * ENAMETOOLONG past a block (with the NUL) or PATH_MAX; ENOENT when empty.
 */
export function ext4Symlink(fs: Ext4, dir: Ext4Inode, name: Uint8Array, target: Uint8Array, cred: Cred): Ext4Inode {
  if (target.length === 0) throw err("ENOENT", "empty symlink target", dir.ino, name);
  if (target.length + 1 > 4096) throw err("ENAMETOOLONG", "symlink target too long", dir.ino, name);
  if (target.includes(0)) throw err("EINVAL", "symlink target contains NUL", dir.ino, name);
  checkCreate(fs, dir, name);
  if (target.length + 1 > fs.sb.blockSize) throw err("ENAMETOOLONG", "symlink target longer than a block", dir.ino, name);
  const plan = planAcls(fs, dir, S_IFLNK | 0o777, 0);
  return withHandle(fs, createCredits(fs) + aclCredits(plan), (h) => {
    const inode = allocInode(h, fs, dir, plan, name, cred);
    try {
      if (target.length + 1 > INLINE_SIZE) {
        const bh = appendDirBlock(h, fs, inode, 0);
        try {
          h.getWriteAccess(bh);
          bh.data.fill(0);
          bh.data.set(target);
          h.dirtyMetadata(bh);
        } finally {
          fs.bcache.brelse(bh);
        }
      } else {
        inode.flags &= ~INODE_FLAGS.EXTENTS;
        inode.iBlock.fill(0);
        inode.iBlock.set(target);
      }
      setInodeSize(inode, target.length);
    } catch (e) {
      discardNewInode(h, fs, inode);
      throw e;
    }
    return addNondir(h, fs, dir, name, inode);
  }, [dir]);
}

/**
 * ext4_link (with vfs_link's checks): a new name for `inode` in `dir`. EPERM
 * for a directory or an immutable/append-only inode, EMLINK at
 * EXT4_LINK_MAX, ENOENT for an inode already without links. Returns the
 * inode referenced once more (the caller iputs it).
 */
export function ext4Link(fs: Ext4, inode: Ext4Inode, dir: Ext4Inode, name: Uint8Array): Ext4Inode {
  checkCreate(fs, dir, name);
  if (isDir(inode)) throw err("EPERM", "hard links to directories are not allowed", inode.ino, name);
  if (inode.flags & (INODE_FLAGS.IMMUTABLE | INODE_FLAGS.APPEND)) throw err("EPERM", "file is immutable or append-only", inode.ino, name);
  if (inode.linksCount === 0) throw err("ENOENT", "file has been removed", inode.ino, name);
  if (inode.linksCount >= EXT4_LINK_MAX) throw err("EMLINK", "too many links", inode.ino, name);
  checkProject(fs, dir, inode, name);
  return withHandle(fs, addEntryCredits(fs), (h) => {
    const ref = fs.iget(inode.ino);
    try {
      addEntry(h, fs, dir, name, inode.ino, fileTypeOf(inode.mode));
      inode.ctime = currentTime();
      inode.linksCount++;
      markInodeDirty(h, fs, inode);
    } catch (e) {
      fs.iput(ref);
      throw e;
    }
    return ref;
  }, [dir]);
}

/** A project-inheriting directory takes only inodes of its project (EXDEV, as ext4_link and ext4_rename). */
function checkProject(fs: Ext4, dir: Ext4Inode, inode: Ext4Inode, name: Uint8Array): void {
  if (dir.flags & INODE_FLAGS.PROJINHERIT && fs.sb.featureRoCompat & RO_COMPAT.PROJECT && dir.projid !== inode.projid) {
    throw err("EXDEV", "different project", dir.ino, name);
  }
}

// ---- unlink, rmdir ----

/** The inode lost its last link: onto the orphan list in this handle (freed by evict at the final iput). */
function lastLinkGone(handle: Handle, fs: Ext4, inode: Ext4Inode): void {
  if (inode.linksCount === 0) orphanAdd(handle, fs, inode);
}

/**
 * ext4_unlink: `name` removed from `dir`, the inode's link dropped and its
 * ctime set; at no links left it goes on the orphan list. EISDIR for a
 * directory. Returns the inode, referenced (the caller's iput may free it).
 */
export function ext4Unlink(fs: Ext4, dir: Ext4Inode, name: Uint8Array): Ext4Inode | undefined {
  checkDir(dir, name);
  checkName(dir, name);
  if (isDotName(name)) throw err("EISDIR", "is a directory", dir.ino, name);
  const inode = igetName(fs, dir, name);
  try {
    if (isDir(inode)) throw err("EISDIR", "is a directory", inode.ino, name);
    checkDelete(dir, inode, name);
    checkLastLink(fs, inode, name);
    withHandle(fs, deleteEntryCredits(fs), (h) => {
      deleteEntry(h, fs, dir, name);
      inode.ctime = { ...dir.ctime };
      if (inode.linksCount > 0) inode.linksCount--;
      lastLinkGone(h, fs, inode);
      markInodeDirty(h, fs, inode);
    }, [dir]);
  } catch (e) {
    fs.iput(inode);
    throw e;
  }
  return inode;
}

/** ext4_empty_dir: nothing but "." and "..". */
export function emptyDir(fs: Ext4, dir: Ext4Inode): boolean {
  if (!(dir.flags & INODE_FLAGS.INLINE_DATA) && dir.size < 12 + 12) throw corrupted("directory too small to hold '.' and '..'", { ino: dir.ino });
  for (const e of readDir(fs, dir)) if (!isDotName(e.name)) return false;
  return true;
}

/**
 * ext4_rmdir (with do_rmdir's and may_delete's checks): an empty directory
 * `name` removed from `dir`; its links cleared, onto the orphan list, the
 * parent's link dropped. EINVAL for ".", ENOTEMPTY for ".." and a directory
 * with entries, ENOTDIR for a non-directory, EBUSY for the root.
 */
export function ext4Rmdir(fs: Ext4, dir: Ext4Inode, name: Uint8Array): Ext4Inode | undefined {
  checkDir(dir, name);
  checkName(dir, name);
  if (name.length === 1 && name[0] === 0x2e) throw err("EINVAL", "cannot remove '.'", dir.ino, name);
  if (isDotName(name)) throw err("ENOTEMPTY", "cannot remove '..'", dir.ino, name);
  const inode = igetName(fs, dir, name);
  try {
    if (!isDir(inode)) throw err("ENOTDIR", "not a directory", inode.ino, name);
    checkDelete(dir, inode, name);
    if (inode.ino === ROOT_INO) throw err("EBUSY", "the root directory", inode.ino, name);
    if (!emptyDir(fs, inode)) throw err("ENOTEMPTY", "directory not empty", inode.ino, name);
    checkLastLink(fs, inode, name, Infinity);
    withHandle(fs, deleteEntryCredits(fs), (h) => {
      deleteEntry(h, fs, dir, name);
      inode.version += 1;
      inode.linksCount = 0;
      inode.size = 0; // i_disksize stays: no links says enough to a recovery
      orphanAdd(h, fs, inode);
      inode.ctime = currentTime();
      markInodeDirty(h, fs, inode);
      decDirLinks(fs, dir);
      markInodeDirty(h, fs, dir);
    }, [dir]);
    fs.dcache.forgetDir(inode.ino);
  } catch (e) {
    fs.iput(inode);
    throw e;
  }
  return inode;
}

// ---- rename ----

/** do_renameat2's first check, before any path is walked (callers walking paths call it first): EINVAL for impossible flags. */
export function checkRenameFlags(flags: RenameFlags): void {
  if ((flags.noreplace || flags.whiteout) && flags.exchange) throw new Ext4Error("EINVAL", "RENAME_EXCHANGE with RENAME_NOREPLACE or RENAME_WHITEOUT");
}

/** The chain dir, its parent, ..., the root (by ".."); EFSCORRUPTED on a loop. */
function ancestry(fs: Ext4, dir: Ext4Inode): number[] {
  const chain = [dir.ino];
  let cur = dir.ino;
  while (cur !== ROOT_INO) {
    const parent = readDotDot(fs, cur === dir.ino ? dir : fs.inode(cur));
    if (chain.includes(parent) || chain.length > 65536) throw corrupted("directory '..' chain loops", { ino: cur });
    chain.push(parent);
    cur = parent;
  }
  return chain;
}

/**
 * lock_rename's trap: the child of the higher of the two parents on the path
 * to the lower one (undefined when neither contains the other).
 */
function renameTrap(fs: Ext4, oldDir: Ext4Inode, newDir: Ext4Inode): number | undefined {
  if (oldDir.ino === newDir.ino) return undefined;
  const up = ancestry(fs, newDir);
  let k = up.indexOf(oldDir.ino);
  if (k > 0) return up[k - 1];
  const down = ancestry(fs, oldDir);
  k = down.indexOf(newDir.ino);
  if (k > 0) return down[k - 1];
  return undefined;
}

/**
 * ext4_rename / ext4_cross_rename with do_renameat2's and vfs_rename's
 * checks: `oldName` in `oldDir` becomes `newName` in `newDir`, replacing
 * what is there (unlinked as ext4Unlink / ext4Rmdir unlink it), or with
 * `exchange` swapping the two; `whiteout` leaves a whiteout at the old name.
 */
export function ext4Rename(fs: Ext4, oldDir: Ext4Inode, oldName: Uint8Array, newDir: Ext4Inode, newName: Uint8Array, flags: RenameFlags = {}, hooks: RenameHooks = {}, cred: Cred = { uid: 0, gid: 0 }): void {
  checkRenameFlags(flags);
  checkDir(oldDir, oldName);
  checkDir(newDir, newName);
  // do_renameat2's order: "." and ".." first, then the old name's lookup, then the new one's.
  if (isDotName(oldName)) throw err("EBUSY", "cannot rename '.' or '..'", oldDir.ino, oldName);
  if (isDotName(newName)) throw err(flags.noreplace ? "EEXIST" : "EBUSY", "cannot rename onto '.' or '..'", newDir.ino, newName);
  checkName(oldDir, oldName);
  const oldInode = igetName(fs, oldDir, oldName);
  let newInode: Ext4Inode | undefined;
  try {
    checkName(newDir, newName);
    const newIno = lookup(fs, newDir, newName);
    if (newIno && flags.noreplace) throw err("EEXIST", "file exists", newDir.ino, newName);
    if (!newIno && flags.exchange) throw err("ENOENT", "no such file or directory", newDir.ino, newName);
    if (newIno) newInode = igetName(fs, newDir, newName);
    const trap = renameTrap(fs, oldDir, newDir);
    if (trap !== undefined && trap === oldInode.ino) throw err("EINVAL", "a directory cannot move into itself", oldInode.ino, newName);
    if (trap !== undefined && newInode && trap === newInode.ino) throw err(flags.exchange ? "EINVAL" : "ENOTEMPTY", "the target contains the source", newInode.ino, newName);
    if (newInode && newInode.ino === oldInode.ino) return; // two names of one inode: nothing to do
    const oldIsDir = isDir(oldInode);
    checkDelete(oldDir, oldInode, oldName);
    if (oldInode.ino === ROOT_INO) throw err("EBUSY", "the root directory", oldInode.ino, oldName);
    if (newInode) {
      const victimDir = flags.exchange ? isDir(newInode) : oldIsDir;
      checkDelete(newDir, newInode, newName);
      if (victimDir && !isDir(newInode)) throw err("ENOTDIR", "not a directory", newInode.ino, newName);
      if (!victimDir && isDir(newInode)) throw err("EISDIR", "is a directory", newInode.ino, newName);
    } else if (newDir.flags & INODE_FLAGS.IMMUTABLE) {
      throw err("EPERM", "directory is immutable", newDir.ino, newName);
    }
    if (newDir.flags & INODE_FLAGS.ENCRYPT || oldDir.flags & INODE_FLAGS.ENCRYPT) throw err("ENOKEY", "required key not available (encrypted directory)", newDir.ino, newName);
    checkProject(fs, newDir, oldInode, newName);
    if (flags.exchange) {
      checkProject(fs, oldDir, newInode!, oldName);
      crossRename(fs, oldDir, oldName, oldInode, newDir, newName, newInode!);
      return;
    }
    if (oldIsDir) {
      if (newInode && !emptyDir(fs, newInode)) throw err("ENOTEMPTY", "directory not empty", newInode.ino, newName);
      if (!newInode && oldDir.ino !== newDir.ino && dirLinkMax(fs, newDir)) throw err("EMLINK", "too many links", newDir.ino, newName);
      if (oldDir.ino !== newDir.ino && readDotDot(fs, oldInode) !== oldDir.ino) throw corrupted("'..' of the directory being moved does not name its parent", { ino: oldInode.ino });
    }
    if (newInode) checkLastLink(fs, newInode, newName, oldIsDir ? Infinity : 1);
    else checkNewName(fs, newDir, newName);
    if (newInode && isReg(oldInode) && autoDaAlloc(fs)) hooks.allocDaBlocks?.(oldInode);
    simpleRename(fs, oldDir, oldName, oldInode, newDir, newName, newInode, flags.whiteout ? cred : undefined);
  } finally {
    if (newInode) fs.iput(newInode);
    fs.iput(oldInode);
  }
}

function simpleRename(fs: Ext4, oldDir: Ext4Inode, oldName: Uint8Array, oldInode: Ext4Inode, newDir: Ext4Inode, newName: Uint8Array,
  newInode: Ext4Inode | undefined, whiteout: Cred | undefined): void {
  const credits = renameCredits(fs, false);
  // ext4_whiteout_for_rename: the whiteout inode (the caller's, mode 0, rdev 0:0) is made in the rename's handle.
  const plan = whiteout ? planAcls(fs, oldDir, S_IFCHR, whiteout.umask ?? 0) : undefined;
  withHandle(fs, credits + (plan ? createCredits(fs) + aclCredits(plan) : 0), (h) => {
    const wh = plan && whiteout ? allocInode(h, fs, oldDir, plan, oldName, whiteout) : undefined;
    try {
      const oldIsDir = isDir(oldInode);
      const cross = oldDir.ino !== newDir.ino;
      if (newInode) setEntry(h, fs, newDir, newName, oldInode.ino, fileTypeOf(oldInode.mode));
      else addEntry(h, fs, newDir, newName, oldInode.ino, fileTypeOf(oldInode.mode));
      // Like most Unix systems, the source's ctime changes on a rename.
      oldInode.ctime = currentTime();
      markInodeDirty(h, fs, oldInode);
      if (wh) {
        setEntry(h, fs, oldDir, oldName, wh.ino, FT.CHR);
        markInodeDirty(h, fs, wh);
      } else {
        deleteEntry(h, fs, oldDir, oldName);
      }
      if (newInode) {
        decDirLinks(fs, newInode);
        newInode.ctime = currentTime();
      }
      oldDir.ctime = currentTime();
      oldDir.mtime = { ...oldDir.ctime };
      if (oldIsDir) {
        if (cross) setDotDot(h, fs, oldInode, newDir.ino);
        decDirLinks(fs, oldDir);
        if (newInode) {
          newInode.linksCount = 0; // empty (checked): no other parent
        } else {
          incDirLinks(fs, newDir);
          markInodeDirty(h, fs, newDir);
        }
      }
      markInodeDirty(h, fs, oldDir);
      if (newInode) {
        lastLinkGone(h, fs, newInode);
        markInodeDirty(h, fs, newInode);
        if (isDir(newInode)) fs.dcache.forgetDir(newInode.ino);
      }
    } finally {
      if (wh) fs.iput(wh);
    }
  }, [oldDir, newDir]);
}

/** ext4_cross_rename: the two entries swap inodes; directories get their ".." and parents' counts right. */
function crossRename(fs: Ext4, oldDir: Ext4Inode, oldName: Uint8Array, oldInode: Ext4Inode, newDir: Ext4Inode, newName: Uint8Array, newInode: Ext4Inode): void {
  const oldIsDir = isDir(oldInode);
  const newIsDir = isDir(newInode);
  const cross = oldDir.ino !== newDir.ino;
  let oldDelta = 0;
  if (cross && oldIsDir !== newIsDir) {
    oldDelta = oldIsDir ? -1 : 1; // old.dir loses (or gains) a subdirectory
    if ((oldDelta > 0 && dirLinkMax(fs, oldDir)) || (oldDelta < 0 && dirLinkMax(fs, newDir))) throw err("EMLINK", "too many links", oldDelta > 0 ? oldDir.ino : newDir.ino, newName);
  }
  for (const [d, i] of [[oldDir, oldInode], [newDir, newInode]] as const) {
    if (cross && isDir(i) && readDotDot(fs, i) !== d.ino) throw corrupted("'..' of the directory being moved does not name its parent", { ino: i.ino });
  }
  withHandle(fs, renameCredits(fs, true), (h) => {
    setEntry(h, fs, newDir, newName, oldInode.ino, fileTypeOf(oldInode.mode));
    setEntry(h, fs, oldDir, oldName, newInode.ino, fileTypeOf(newInode.mode));
    const t = currentTime();
    oldInode.ctime = t;
    newInode.ctime = { ...t };
    markInodeDirty(h, fs, oldInode);
    markInodeDirty(h, fs, newInode);
    if (cross && oldIsDir) setDotDot(h, fs, oldInode, newDir.ino);
    if (cross && newIsDir) setDotDot(h, fs, newInode, oldDir.ino);
    if (oldDelta) {
      // ext4_update_dir_count
      if (oldDelta > 0) { incDirLinks(fs, oldDir); decDirLinks(fs, newDir); } else { decDirLinks(fs, oldDir); incDirLinks(fs, newDir); }
      markInodeDirty(h, fs, oldDir);
      markInodeDirty(h, fs, newDir);
    }
  }, [oldDir, newDir]);
}
