// The block a directory grows by (ext4_getblk with EXT4_GET_BLOCKS_CREATE):
// mapped through the write-side map_blocks, then a new metadata buffer,
// zeroed and dirtied in the handle (directory blocks live in the device's
// cache, as sb_getblk puts them).

import type { BufferHead } from "../cache/buffer-head.js";
import { Ext4Error } from "../errors.js";
import type { Inode } from "../format/inode.js";
import type { Handle } from "../journal/handle.js";
import type { Ext4 } from "./super.js";

/** Allocates and maps directory block `lblk`; returns its buffer, held, zeroed, dirty. */
export function appendDirBlock(_handle: Handle, _fs: Ext4, dir: Inode, lblk: number): BufferHead {
  throw new Ext4Error("EOPNOTSUPP", `growing a directory (block ${lblk}) needs block allocation, which is not merged yet`, { ino: dir.ino });
}
