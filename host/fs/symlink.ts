// Symlink targets: fast (in i_block), inline (inline_data), or in data blocks.

import { corrupted, Ext4Error } from "../errors.js";
import { Inode, INODE_FLAGS } from "../format/inode.js";
import { inlinePayload } from "./inline.js";
import { MapKind } from "./mapping.js";
import type { Ext4 } from "./super.js";

const SYMLINK_MAX = 4096;

export function readSymlink(fs: Ext4, inode: Inode): Uint8Array {
  if (inode.flags & INODE_FLAGS.ENCRYPT) throw new Ext4Error("ENOKEY", "symlink target is encrypted; no key is available", { ino: inode.ino });
  const size = inode.size;
  if (size > SYMLINK_MAX) throw corrupted(`symlink target of ${size} bytes is too long`, { ino: inode.ino });
  if (inode.flags & INODE_FLAGS.INLINE_DATA) {
    const target = inlinePayload(fs, inode);
    if (target.length !== size) throw corrupted(`inline symlink stores ${target.length} of ${size} bytes`, { ino: inode.ino });
    return target;
  }
  // An xattr block is charged to i_blocks as a whole cluster (bigalloc).
  const eaBlocks = inode.fileAcl !== 0 ? fs.sb.clusterSize / 512 : 0;
  const fast = !(inode.flags & INODE_FLAGS.EXTENTS) ? inode.blocks512 - eaBlocks === 0 : false;
  if (fast || (size < 60 && inode.blocks512 - eaBlocks === 0)) {
    if (size > 60) throw corrupted(`fast symlink of ${size} bytes`, { ino: inode.ino });
    return inode.iBlock.slice(0, size);
  }
  const m = fs.mapBlocks(inode, 0, 1);
  if (m.kind !== MapKind.Mapped) throw corrupted("slow symlink has no data block", { ino: inode.ino });
  if (size > fs.sb.blockSize) throw corrupted(`symlink target of ${size} bytes exceeds a block`, { ino: inode.ino });
  return fs.bcache.read(m.pblk, "symlink block").slice(0, size);
}
