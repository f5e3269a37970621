// sync(2) for one volume: the data of every inode written through it
// written back and waited (an integrity pass), then ext4_sync_fs (the
// journal committed, or the dirty buffers written home, and the superblock).

import type { VfsContext } from "./context.js";

export function writebackAll(ctx: VfsContext): void {
  const fs = ctx.fs;
  if (fs.readOnly) return;
  for (const inode of [...ctx.written]) {
    if (inode.dirtyFolios > 0 || inode.delayedBlocks > 0) ctx.io(inode).writeback(inode, 0, Infinity, true);
    ctx.written.delete(inode);
  }
  fs.sync();
}
