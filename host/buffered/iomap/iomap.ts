// ext4's iomap_begin for the buffered read path: one call maps the longest
// extent range starting at `pos` (fs/ext4/inode.c ext4_iomap_begin, read case).

import type { Inode } from "../../format/inode.js";
import { MapKind } from "../../fs/mapping.js";
import type { Ext4 } from "../../fs/super.js";

export const enum IomapType { Hole = 0, Delalloc = 1, Mapped = 2, Unwritten = 3, Inline = 4 }

export interface Iomap {
  type: IomapType;
  /** File byte offset where the mapping starts (block aligned, <= the pos asked). */
  offset: number;
  /** Bytes mapped, > 0. */
  length: number;
  /** Device byte address of `offset` for Mapped/Unwritten; -1 otherwise. */
  addr: number;
}

/** Maps [pos, pos+len) to one extent-sized piece. Byte ranges are half-open. */
export function ext4IomapBegin(fs: Ext4, inode: Inode, pos: number, len: number): Iomap {
  const bs = fs.sb.blockSize;
  const lblk = Math.floor(pos / bs);
  const lastBlk = Math.ceil((pos + len) / bs);
  const maxLen = Math.min(lastBlk - lblk, 0xffffffff - lblk + 1);
  const m = fs.mapBlocks(inode, lblk, Math.max(1, maxLen));
  const offset = lblk * bs;
  const length = m.len * bs;
  switch (m.kind) {
    case MapKind.Mapped: return { type: IomapType.Mapped, offset, length, addr: m.pblk * bs };
    case MapKind.Unwritten: return { type: IomapType.Unwritten, offset, length, addr: m.pblk * bs };
    default: return { type: IomapType.Hole, offset, length, addr: -1 };
  }
}
