// Buffer heads: one object per cached metadata block, as fs/buffer.c keeps
// them. The bytes live in a folio of the device mapping; the folio's
// per-block bits are the truth for "uptodate" and "dirty" (so reclaim never
// takes a dirty block), the head carries what only the journal needs
// (jbddirty, revoked, its journal_head) and the reference count that pins
// the folio while anyone holds the buffer.

export const BH = {
  /** The bytes are the block's (read from the device or fully written). */
  UPTODATE: 1 << 0,
  /** To be written home (by sync, or by the checkpoint of a committed transaction). */
  DIRTY: 1 << 1,
  /** Modified under a journal handle: goes to the log at commit, not home. */
  JBDDIRTY: 1 << 2,
  /** Revoked in the running transaction (replay must not restore older copies). */
  REVOKED: 1 << 3,
  /** Checksum and structure checked since it was read (buffer_verified). */
  VERIFIED: 1 << 4,
  /** Newly allocated metadata block whose old device contents mean nothing. */
  NEW: 1 << 5,
} as const;

export class BufferHead {
  /** BH bits other than UPTODATE and DIRTY, which the folio holds. */
  state = 0;
  /** References (getblk/bread .. brelse). The folio is pinned while > 0. */
  count = 0;
  /** The journal's record of this buffer (jbd2's journal_head); owned by host/journal. */
  jh: unknown = undefined;

  constructor(
    /** Filesystem block number. */
    readonly blocknr: number,
    /** Folio slot holding the block, and the slot generation it was found under. */
    public slot: number,
    public gen: number,
    /** Block index within the folio. */
    public blkInFolio: number,
    private readonly owner: BufferHeadOwner,
  ) {}

  /** The block's bytes in the folio. A view: valid until the next cache call that may grow memory. */
  get data(): Uint8Array { return this.owner.bufferData(this); }
  get uptodate(): boolean { return this.owner.bufferUptodate(this); }
  get dirty(): boolean { return this.owner.bufferDirty(this); }
  test(bit: number): boolean { return (this.state & bit) !== 0; }
  set(bit: number): void { this.state |= bit; }
  clear(bit: number): void { this.state &= ~bit; }
}

/** What a buffer head asks of the cache that owns it. */
export interface BufferHeadOwner {
  bufferData(bh: BufferHead): Uint8Array;
  bufferUptodate(bh: BufferHead): boolean;
  bufferDirty(bh: BufferHead): boolean;
}
