// The per-inode half of the write-feature gate (mount-rw.ts checkWritable is
// the per-filesystem half): inodes a read-write mount still may not change as
// callers ask. Namespace changes have theirs in namei.ts checkNewName
// (ENOKEY in encrypted directories, EOPNOTSUPP for a name a casefolded
// directory could fold differently from the kernel).

import { Ext4Error } from "../errors.js";
import { u32 } from "../format/bytes.js";
import { INCOMPAT } from "../format/features.js";
import { GOOD_OLD_INODE_SIZE, type Inode, INODE_FLAGS } from "../format/inode.js";
import { parseXattrEntries, XATTR_BLOCK_HEADER, XATTR_MAGIC } from "../format/xattr.js";
import type { Ext4 } from "./super.js";

/**
 * Before a write, truncate, fallocate or open for writing of `inode`'s
 * contents: a verity file is read-only for good (the kernel's
 * fsverity_file_open and fsverity_prepare_setattr: EPERM); an encrypted file
 * needs its key, which we never have (fscrypt_file_open: ENOKEY).
 */
export function checkContentWritable(inode: Inode, syscall?: string): void {
  if (inode.flags & INODE_FLAGS.VERITY) {
    throw new Ext4Error("EPERM", "operation not permitted: a verity file is read-only", { ino: inode.ino, syscall });
  }
  if (inode.flags & INODE_FLAGS.ENCRYPT) {
    throw new Ext4Error("ENOKEY", "required key not available (encrypted file)", { ino: inode.ino, syscall });
  }
}

/**
 * ea_inode: does `inode` hold a reference on a value in an inode of its own?
 * Such references are never dropped here (xattr-write.ts refuses), so the
 * last unlink of such an inode is refused before anything changes
 * (EOPNOTSUPP), rather than failing half-way in eviction.
 */
export function holdsEaInodeRefs(fs: Ext4, inode: Inode): boolean {
  if (!(fs.sb.featureIncompat & INCOMPAT.EA_INODE)) return false;
  const raw = inode.raw;
  const start = GOOD_OLD_INODE_SIZE + inode.extraIsize;
  if (fs.sb.inodeSize > GOOD_OLD_INODE_SIZE && start + 4 <= fs.sb.inodeSize && u32(raw, start) === XATTR_MAGIC) {
    if (parseXattrEntries(raw, start + 4, fs.sb.inodeSize, { ino: inode.ino }).some((e) => e.valueInum !== 0)) return true;
  }
  if (inode.fileAcl === 0) return false;
  const b = fs.bcache.readCopy(inode.fileAcl, "xattr block");
  if (u32(b, 0) !== XATTR_MAGIC) return false; // the xattr code reports the damage itself
  return parseXattrEntries(b, XATTR_BLOCK_HEADER, b.length, { ino: inode.ino, block: inode.fileAcl }).some((e) => e.valueInum !== 0);
}
