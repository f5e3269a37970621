// The iomap buffered read path (fs/iomap/buffered-io.c): iterate the range
// one mapping at a time; within it, walk large folios; per folio, blocks
// not yet uptodate are zeroed (hole, unwritten, past EOF) or added to a bio
// that spans folios while the device bytes stay contiguous.

import { PAGE_SIZE } from "../../cache/folio-cache.js";
import { readaheadFolioOrder } from "../folio-order.js";
import type { Inode } from "../../format/inode.js";
import type { Ext4Inode } from "../../fs/inode.js";
import type { Ext4 } from "../../fs/super.js";
import { Ext4Error } from "../../errors.js";
import { ReadBio } from "../bio.js";
import { bufferedRead, BufferedIO } from "../io.js";
import type { ReadaheadState } from "../readahead.js";
import { ext4IomapBegin, IomapType } from "./iomap.js";

export class IomapBufferedIO implements BufferedIO {
  readonly name = "iomap" as const;
  constructor(private readonly fs: Ext4) {}

  read(inode: Inode, pos: number, dst: Uint8Array, ra: ReadaheadState): number {
    return bufferedRead(this.fs, inode, pos, dst, ra, (i, from, to, pins) => this.readahead(i, from, to, pins));
  }

  // The iomap write path is issue 7; read-write mounts with buffered_iomap are refused until then.
  write(inode: Ext4Inode): number { return notYet(inode); }
  writeback(inode: Ext4Inode): void { notYet(inode); }
  fsync(inode: Ext4Inode): void { notYet(inode); }
  zeroRange(inode: Ext4Inode): void { notYet(inode); }
  allocDaBlocks(inode: Ext4Inode): void { notYet(inode); }

  /**
   * iomap_readahead: makes [from, to) uptodate; new folios are sized to the
   * range. With `pins`, every folio visited stays pinned for the caller's copy.
   */
  private readahead(inode: Inode, from: number, to: number, pins?: number[]): void {
    const fs = this.fs;
    const cache = fs.cache;
    const bs = fs.sb.blockSize;
    const size = inode.size;
    const bio = new ReadBio(fs);
    const mapping = cache.mappingOf(inode);
    let pos = Math.floor(from / bs) * bs;
    try {
      while (pos < to) {
        const map = ext4IomapBegin(fs, inode, pos, to - pos);
        const mapEnd = Math.min(to, map.offset + map.length);
        while (pos < mapEnd) {
          const index = Math.floor(pos / PAGE_SIZE);
          let slot = cache.lookup(mapping, index);
          if (slot < 0) slot = cache.create(mapping, index, readaheadFolioOrder(cache, mapping, index, to));
          if (pins) {
            cache.x.folioPin(slot);
            pins.push(slot);
          }
          const fStart = cache.index(slot) * PAGE_SIZE;
          const fEnd = fStart + cache.size(slot);
          const segEnd = Math.min(mapEnd, fEnd);
          // Blocks of this folio within the mapping: [b0, b1).
          const b0 = Math.floor((pos - fStart) / bs);
          const b1 = Math.ceil((segEnd - fStart) / bs);
          // Runs of blocks not yet uptodate within [b0, b1), found in wasm.
          for (let b = b0; b < b1; ) {
            const skip = cache.x.folioFindNotUptodate(slot, b, b1 - b);
            if (skip < 0) break;
            b += skip;
            const up = cache.x.folioFindUptodate(slot, b, b1 - b);
            const e = up < 0 ? b1 : b + up;
            const blockPos = fStart + b * bs;
            // iomap_block_needs_zeroing: not mapped, or at/after EOF.
            if (map.type !== IomapType.Mapped || blockPos >= size) {
              fs.wasm.x.zeroRange(cache.addr(slot) + b * bs, (e - b) * bs);
              cache.setUptodate(slot, b, e - b);
            } else {
              const eofBlocks = Math.ceil((size - blockPos) / bs);
              const n = Math.min(e - b, eofBlocks);
              bio.add(map.addr + (blockPos - map.offset), slot, b, n);
              if (n < e - b) {
                fs.wasm.x.zeroRange(cache.addr(slot) + (b + n) * bs, (e - b - n) * bs);
                cache.setUptodate(slot, b + n, e - b - n);
              }
            }
            b = e;
          }
          pos = segEnd;
        }
      }
      bio.submit();
    } finally {
      if (bio.pending) bio.abandon();
    }
  }
}

function notYet(inode: Ext4Inode): never {
  throw new Ext4Error("EOPNOTSUPP", "the iomap buffered write path is not implemented yet (issue 7)", { ino: inode.ino });
}
