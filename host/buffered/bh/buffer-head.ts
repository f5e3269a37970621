// Buffer heads: per-block state attached to a folio (fs/buffer.c). Kept on
// the host beside the folio arena; a folio slot's generation tells when the
// folio was reclaimed and its buffers are stale.

import type { FolioCache } from "../../cache/folio-cache.js";

export const BH = { Uptodate: 1, Dirty: 2, Mapped: 4, New: 8, Delay: 16, Unwritten: 32 } as const;

export class BufferHead {
  state = 0;
  /** Device block, valid when Mapped. */
  blocknr = 0;
  constructor(readonly folioSlot: number, readonly index: number) {}
  has(bit: number): boolean { return (this.state & bit) !== 0; }
  set(bit: number): void { this.state |= bit; }
  clear(bit: number): void { this.state &= ~bit; }
}

interface Attached { gen: number; bhs: BufferHead[] }

/** The buffer ring of each folio that has one. */
export class BufferHeads {
  private attached = new Map<number, Attached>();
  private pruneAt = 65536;
  constructor(private readonly cache: FolioCache) {}

  /** The folio's buffers, created (create_empty_buffers) if it has none yet. */
  ofFolio(slot: number): BufferHead[] {
    const gen = this.cache.gen(slot);
    const a = this.attached.get(slot);
    if (a && a.gen === gen) return a.bhs;
    const n = this.cache.blocks(slot);
    // A slot's ring outlives its folio: a folio made in the same slot with as many blocks takes the old heads,
    // emptied, rather than new ones (what the buffer_head slab does for the kernel).
    const reuse = a !== undefined && a.bhs.length === n;
    const bhs: BufferHead[] = reuse ? a.bhs : new Array<BufferHead>(n);
    // A folio block already uptodate in the arena keeps that state (one scan when none is, as for a new folio).
    const any = this.cache.x.folioFindUptodate(slot, 0, n) >= 0;
    for (let i = 0; i < n; i++) {
      const bh = reuse ? bhs[i] : (bhs[i] = new BufferHead(slot, i));
      bh.state = any && this.cache.isUptodate(slot, i, 1) ? BH.Uptodate : 0;
      bh.blocknr = 0;
    }
    if (reuse) a.gen = gen;
    else this.attached.set(slot, { gen, bhs });
    if (this.attached.size > this.pruneAt) this.prune();
    return bhs;
  }

  /** The folio's buffers if it has a current ring (no new one is made). */
  peek(slot: number): BufferHead[] | undefined {
    const a = this.attached.get(slot);
    return a && a.gen === this.cache.gen(slot) ? a.bhs : undefined;
  }

  /** block_invalidate_folio: buffers [first, first+n) lose every state (their blocks are truncated away). */
  invalidate(slot: number, first: number, n: number): void {
    const bhs = this.peek(slot);
    if (!bhs) return;
    for (let i = first; i < first + n && i < bhs.length; i++) {
      bhs[i].state = 0;
      bhs[i].blocknr = 0;
    }
  }

  /** Forgets rings whose folio was reclaimed; the next prune waits until the map has doubled (amortised). */
  private prune(): void {
    for (const [slot, a] of this.attached) if (this.cache.gen(slot) !== a.gen) this.attached.delete(slot);
    this.pruneAt = Math.max(65536, 2 * this.attached.size);
  }
}

const rings = new WeakMap<FolioCache, BufferHeads>();

/** The one set of buffer rings of a cache (every BhBufferedIO of a mount shares it). */
export function buffersOf(cache: FolioCache): BufferHeads {
  let b = rings.get(cache);
  if (!b) rings.set(cache, (b = new BufferHeads(cache)));
  return b;
}
