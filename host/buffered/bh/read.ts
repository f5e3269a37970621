// The buffer_head buffered read path: ext4's own readahead
// (fs/ext4/readpage.c, ext4_mpage_readpages) over readahead-sized folios,
// mapping block by block through a cached extent answer and merging
// contiguous folios into one bio; folios it cannot handle that way ("confused":
// a mapped block after a hole, discontiguous blocks, partly uptodate) go
// through block_read_full_folio: buffer heads, get_block and a read per block.

import { PAGE_SIZE, type FolioCache } from "../../cache/folio-cache.js";
import { readaheadFolioOrder } from "../folio-order.js";
import type { Inode } from "../../format/inode.js";
import { BlockMapping, MapKind } from "../../fs/mapping.js";
import type { Ext4 } from "../../fs/super.js";
import { ReadBio } from "../bio.js";
import { bufferedRead, BufferedIO } from "../io.js";
import type { ReadaheadState } from "../readahead.js";
import { BH, BufferHead, BufferHeads, buffersOf } from "./buffer-head.js";
import type { Ext4Inode } from "../../fs/inode.js";
import { bhState } from "./state.js";
import { bhAllocDaBlocks, bhFsync, bhWriteback, bhZeroRange } from "./sync.js";
import { bhWrite, type WriteOptions } from "./write.js";

export class BhBufferedIO implements BufferedIO {
  readonly name = "bh" as const;
  private readonly buffers: BufferHeads;
  constructor(private readonly fs: Ext4) {
    this.buffers = buffersOf(fs.cache);
    // A read-write mount: the writeback callback, the ordered-data hook and the invalidate hook are registered now.
    if (!fs.readOnly) bhState(fs);
  }

  read(inode: Inode, pos: number, dst: Uint8Array, ra: ReadaheadState): number {
    return bufferedRead(this.fs, inode, pos, dst, ra, (i, from, to, pins) => this.readpages(i, from, to, pins));
  }

  // The write side (write.ts, writepages.ts, sync.ts) keeps its state per mount, shared by every BhBufferedIO.
  write(inode: Ext4Inode, pos: number, src: Uint8Array, opts?: WriteOptions): number { return bhWrite(bhState(this.fs), inode, pos, src, opts); }
  writeback(inode: Ext4Inode, from: number, to: number, sync: boolean): void { bhWriteback(bhState(this.fs), inode, from, to, sync); }
  fsync(inode: Ext4Inode, datasync: boolean): void { bhFsync(bhState(this.fs), inode, datasync); }
  zeroRange(inode: Ext4Inode, from: number, to: number): void { bhZeroRange(bhState(this.fs), inode, from, to); }
  allocDaBlocks(inode: Ext4Inode): void { bhAllocDaBlocks(bhState(this.fs), inode); }

  /**
   * ext4_mpage_readpages over the folios covering [from, to). Folios are
   * pinned while their blocks are mapped (mapping reads metadata, which may
   * reclaim) and, when `pins` is given, until the caller has copied them out.
   */
  private readpages(inode: Inode, from: number, to: number, pins?: number[]): void {
    const fs = this.fs;
    const cache = fs.cache;
    const bs = fs.sb.blockSize;
    const minFolioBytes = Math.max(PAGE_SIZE, bs);
    const lastBlockInFile = Math.ceil(inode.size / bs);
    const bio = new ReadBio(fs);
    const mapping = cache.mappingOf(inode);
    let map: BlockMapping | undefined;
    const getMap = (lblk: number): BlockMapping => {
      if (!map || lblk < map.lblk || lblk >= map.lblk + map.len) {
        map = fs.mapBlocks(inode, lblk, Math.max(1, lastBlockInFile - lblk));
      }
      return map;
    };
    try {
      for (let fpos = Math.floor(from / minFolioBytes) * minFolioBytes; fpos < to; ) {
        const index = fpos / PAGE_SIZE;
        let slot = cache.lookup(mapping, index);
        if (slot >= 0) {
          fpos = cache.index(slot) * PAGE_SIZE + cache.size(slot);
          hold(cache, slot, pins);
          if (cache.isUptodate(slot, 0, cache.blocks(slot))) continue;
          bio.submit();
          this.readFullFolio(inode, slot);
          continue;
        }
        // ext4 has large folios for regular files on this path too (since 6.16).
        slot = cache.create(mapping, index, readaheadFolioOrder(cache, mapping, index, to));
        cache.x.folioPin(slot);
        try {
          this.readNewFolio(inode, slot, bio, getMap, lastBlockInFile);
        } finally {
          cache.x.folioUnpin(slot);
        }
        hold(cache, slot, pins);
        fpos = cache.index(slot) * PAGE_SIZE + cache.size(slot);
      }
      bio.submit();
    } finally {
      if (bio.pending) bio.abandon();
    }
  }

  /** One new folio: contiguous mapped blocks join the bio, trailing holes are zeroed, anything else is confused. */
  private readNewFolio(inode: Inode, slot: number, bio: ReadBio, getMap: (lblk: number) => BlockMapping, lastBlockInFile: number): void {
    const fs = this.fs;
    const cache = fs.cache;
    const bs = fs.sb.blockSize;
    const blocksPerFolio = cache.blocks(slot);
    const firstLblk = (cache.index(slot) * PAGE_SIZE) / bs;
    let firstHole = blocksPerFolio;
    let firstPblk = -1;
    for (let i = 0; i < blocksPerFolio; i++) {
      const lblk = firstLblk + i;
      if (lblk >= lastBlockInFile) { if (firstHole === blocksPerFolio) firstHole = i; continue; }
      const m = getMap(lblk);
      if (m.kind !== MapKind.Mapped) { if (firstHole === blocksPerFolio) firstHole = i; continue; }
      const pblk = m.pblk + (lblk - m.lblk);
      // A mapped block after a hole, or a break in contiguity, confuses the fast path.
      if (firstHole !== blocksPerFolio || (firstPblk >= 0 && pblk !== firstPblk + i)) {
        bio.submit();
        this.readFullFolio(inode, slot);
        return;
      }
      if (firstPblk < 0) firstPblk = pblk;
    }
    if (firstHole < blocksPerFolio) {
      fs.wasm.x.zeroRange(cache.addr(slot) + firstHole * bs, (blocksPerFolio - firstHole) * bs);
      cache.setUptodate(slot, firstHole, blocksPerFolio - firstHole);
    }
    if (firstHole > 0) bio.add(firstPblk * bs, slot, 0, firstHole);
  }

  /**
   * block_read_full_folio: buffer heads, get_block for one block at a time,
   * a read per mapped block; reads of adjacent blocks merge into one request,
   * as the block layer's plug merges the per-buffer bios.
   */
  private readFullFolio(inode: Inode, slot: number): void {
    const fs = this.fs;
    const cache = fs.cache;
    const bs = fs.sb.blockSize;
    const lastBlockInFile = Math.ceil(inode.size / bs);
    const firstLblk = (cache.index(slot) * PAGE_SIZE) / bs;
    const bhs = this.buffers.ofFolio(slot);
    const plug = new ReadBio(fs);
    const reading: BufferHead[] = [];
    cache.x.folioPin(slot);
    try {
      for (const bh of bhs) {
        if (bh.has(BH.Uptodate) || cache.isUptodate(slot, bh.index, 1)) { bh.set(BH.Uptodate); continue; }
        const lblk = firstLblk + bh.index;
        if (lblk < lastBlockInFile) {
          const m = fs.mapBlocks(inode, lblk, 1);
          if (m.kind === MapKind.Mapped) {
            bh.blocknr = m.pblk;
            bh.set(BH.Mapped);
            plug.add(m.pblk * bs, slot, bh.index, 1);
            reading.push(bh);
            continue;
          }
          if (m.kind === MapKind.Unwritten) bh.set(BH.Unwritten);
        }
        fs.wasm.x.zeroRange(cache.addr(slot) + bh.index * bs, bs);
        cache.setUptodate(slot, bh.index, 1);
        bh.set(BH.Uptodate);
      }
      plug.submit();
      for (const bh of reading) bh.set(BH.Uptodate);
    } finally {
      if (plug.pending) plug.abandon();
      cache.x.folioUnpin(slot);
    }
  }
}

/** Keeps a folio pinned for the caller's copy-out (filemap_get_pages holds a reference). */
function hold(cache: FolioCache, slot: number, pins: number[] | undefined): void {
  if (!pins) return;
  cache.x.folioPin(slot);
  pins.push(slot);
}
