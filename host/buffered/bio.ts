// A read "bio": contiguous device bytes gathered into parts of several
// folios, submitted as one scatter read. Folios in a pending bio are pinned
// (the kernel holds them locked during I/O) so reclaim cannot take them; their
// blocks become uptodate when the bio completes.

import { readDevice } from "../cache/buffer-cache.js";
import type { FolioCache } from "../cache/folio-cache.js";
import type { Ext4 } from "../fs/super.js";

interface Segment { slot: number; offset: number; len: number; firstBlock: number; nBlocks: number }

export class ReadBio {
  private start = -1;
  private end = -1;
  private segs: Segment[] = [];
  /** Device requests submitted (for statistics). */
  submitted = 0;
  private readonly cache: FolioCache;

  constructor(private readonly fs: Ext4, private readonly maxBytes = 8 << 20) {
    this.cache = fs.cache;
  }

  /** Adds device bytes at devPos filling blocks [firstBlock, +nBlocks) of folio `slot`. */
  add(devPos: number, slot: number, firstBlock: number, nBlocks: number): void {
    const bs = this.cache.blockSize;
    const len = nBlocks * bs;
    if (this.start >= 0 && (devPos !== this.end || this.end - this.start + len > this.maxBytes)) this.submit();
    if (this.start < 0) this.start = this.end = devPos;
    this.cache.x.folioPin(slot);
    this.segs.push({ slot, offset: firstBlock * bs, len, firstBlock, nBlocks });
    this.end += len;
  }

  get pending(): boolean { return this.start >= 0; }

  /** Drops the gathered parts without reading (after an error): unpins, leaves blocks not uptodate. */
  abandon(): void {
    for (const s of this.segs) this.cache.x.folioUnpin(s.slot);
    this.segs = [];
    this.start = this.end = -1;
  }

  /** Sends what is gathered, then marks the blocks uptodate and unpins. */
  submit(): void {
    if (this.start < 0) return;
    const segs = this.segs;
    this.segs = [];
    const start = this.start;
    this.start = this.end = -1;
    try {
      const views = segs.map((s) => this.fs.wasm.view(this.cache.addr(s.slot) + s.offset, s.len));
      readDevice(this.fs.device, start, views, this.cache.blockSize);
      this.submitted++;
      for (const s of segs) this.cache.setUptodate(s.slot, s.firstBlock, s.nBlocks);
    } finally {
      for (const s of segs) this.cache.x.folioUnpin(s.slot);
    }
  }
}
