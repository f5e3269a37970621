// The block a directory grows by (ext4_getblk with EXT4_GET_BLOCKS_CREATE):
// mapped through the write-side map_blocks, then a new metadata buffer,
// zeroed and dirtied in the handle (directory blocks live in the device's
// cache, as sb_getblk puts them).

import type { BufferHead } from "../cache/buffer-head.js";
import { corrupted } from "../errors.js";
import type { Inode } from "../format/inode.js";
import type { Handle } from "../journal/handle.js";
import { ext4MapBlocks, GET_BLOCKS, MAP } from "./map-blocks.js";
import type { Ext4 } from "./super.js";

/** Allocates (or finds) directory block `lblk`; returns its buffer, held: a new one zeroed and dirty. */
export function appendDirBlock(handle: Handle, fs: Ext4, dir: Inode, lblk: number): BufferHead {
  const m = ext4MapBlocks(handle, fs, dir, { lblk, len: 1 }, GET_BLOCKS.CREATE);
  if (!(m.flags & MAP.MAPPED) || m.lblk !== lblk) throw corrupted(`directory block ${lblk} could not be mapped`, { ino: dir.ino });
  if (!(m.flags & MAP.NEW)) return fs.bcache.bread(m.pblk, "directory block");
  const bh = fs.bcache.getblk(m.pblk, "directory block");
  try {
    handle.getCreateAccess(bh);
    bh.data.fill(0);
    handle.dirtyMetadata(bh);
  } catch (e) {
    fs.bcache.brelse(bh);
    throw e;
  }
  return bh;
}
