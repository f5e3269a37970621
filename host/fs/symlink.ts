// Symlink targets: fast (in i_block), inline (inline_data), or in data blocks.

import { corrupted, Ext4Error } from "../errors.js";
import { u32 } from "../format/bytes.js";
import { Inode, INODE_FLAGS } from "../format/inode.js";
import { inlineStored } from "./inline.js";
import { MapKind } from "./mapping.js";
import type { Ext4 } from "./super.js";

const SYMLINK_MAX = 4096;

export function readSymlink(fs: Ext4, inode: Inode): Uint8Array {
  if (inode.flags & INODE_FLAGS.ENCRYPT) throw new Ext4Error("ENOKEY", "symlink target is encrypted; no key is available", { ino: inode.ino });
  return storedTarget(fs, inode, checkedTarget);
}

/**
 * The ciphertext of an encrypted symlink (fscrypt_symlink_data: le16 length,
 * then that many bytes), for showing as a no-key name.
 */
export function encryptedSymlinkCiphertext(fs: Ext4, inode: Inode): Uint8Array {
  const stored = storedTarget(fs, inode, (b, size) => b.slice(0, size));
  const len = stored.length >= 2 ? stored[0] | (stored[1] << 8) : -1;
  // i_size covers exactly the length word and the ciphertext (e2fsck's check_symlink).
  if (len <= 0 || 2 + len !== stored.length) throw corrupted(`encrypted symlink claims ${len} bytes, i_size holds ${stored.length - 2}`, { ino: inode.ino });
  return stored.subarray(2, 2 + len);
}

function storedTarget(fs: Ext4, inode: Inode, checkedTarget: (stored: Uint8Array, size: number, inode: Inode) => Uint8Array): Uint8Array {
  const size = inode.size;
  if (size > SYMLINK_MAX) throw corrupted(`symlink target of ${size} bytes is too long`, { ino: inode.ino });
  // i_size counts only its low word for a symlink (ext4_isize), but a high word is damage
  // (e2fsck's check_symlink): the length of the target is unknown.
  if (u32(inode.raw, 0x6c) !== 0) throw corrupted(`symlink i_size_high is ${u32(inode.raw, 0x6c)}`, { ino: inode.ino });
  if (inode.flags & INODE_FLAGS.INLINE_DATA) {
    if (size >= fs.sb.blockSize) throw corrupted(`symlink target of ${size} bytes does not fit a block`, { ino: inode.ino });
    return checkedTarget(inlineStored(fs, inode), size, inode);
  }
  // An xattr block is charged to i_blocks as a whole cluster (bigalloc).
  const eaBlocks = inode.fileAcl !== 0 ? fs.sb.clusterSize / 512 : 0;
  const fast = !(inode.flags & INODE_FLAGS.EXTENTS) ? inode.blocks512 - eaBlocks === 0 : false;
  if (fast || (size < 60 && inode.blocks512 - eaBlocks === 0)) {
    if (size >= 60) throw corrupted(`fast symlink of ${size} bytes`, { ino: inode.ino });
    return checkedTarget(inode.iBlock, size, inode);
  }
  const m = fs.mapBlocks(inode, 0, 1);
  if (m.kind !== MapKind.Mapped) throw corrupted("slow symlink has no data block", { ino: inode.ino });
  // The target and its NUL share one block (ext4_symlink, e2fsck's check_symlink).
  if (size >= fs.sb.blockSize) throw corrupted(`symlink target of ${size} bytes does not fit a block`, { ino: inode.ino });
  return checkedTarget(fs.bcache.read(m.pblk, "symlink block"), size, inode);
}

/**
 * The target as stored: i_size bytes without a NUL, then a NUL or the end of
 * the storage. Anything else is a target the kernel would cut short or
 * refuse, and e2fsck calls the symlink invalid.
 */
function checkedTarget(stored: Uint8Array, size: number, inode: Inode): Uint8Array {
  const nul = stored.indexOf(0);
  const len = nul < 0 ? stored.length : nul;
  if (size === 0 || len !== size) throw corrupted(`symlink target runs ${len} bytes to its NUL but i_size is ${size}`, { ino: inode.ino });
  return stored.slice(0, size);
}
