// Which buffered I/O path an inode takes: iomap when the mount asks for it
// (buffered_iomap) and the inode has nothing iomap does not support; the
// series' fallback rules send the rest to buffer heads.

import { INODE_FLAGS, Inode, isReg } from "../format/inode.js";
import type { Ext4 } from "../fs/super.js";
import type { BufferedIO } from "./io.js";

export function shouldUseBufferedIomap(fs: Ext4, inode: Inode): boolean {
  if (!fs.config.options.bufferedIomap) return false;
  if (!isReg(inode)) return false;
  if (fs.config.options.data === "journal" || inode.flags & INODE_FLAGS.JOURNAL_DATA) return false;
  if (!(inode.flags & INODE_FLAGS.EXTENTS)) return false;
  if (inode.flags & (INODE_FLAGS.INLINE_DATA | INODE_FLAGS.VERITY | INODE_FLAGS.ENCRYPT)) return false;
  return true;
}

export function selectPath(fs: Ext4, inode: Inode, paths: { bh: BufferedIO; iomap: BufferedIO }): BufferedIO {
  return shouldUseBufferedIomap(fs, inode) ? paths.iomap : paths.bh;
}
