// Revoke records (fs/jbd2/revoke.c): a freed metadata block is revoked in
// the running transaction so replay never restores a copy of it from this
// or an older transaction over the block's next owner. Journaling the block
// again in the same transaction cancels the record (jbd2_journal_cancel_revoke),
// or replay would drop the new copy too.

import { BLOCK_TAIL_SIZE, encodeRevoke, JBD2_INCOMPAT, REVOKE_HEADER_SIZE, setBlockTail } from "../format/jbd2.js";

/** Revoke records of one transaction. */
export class RevokeTable {
  readonly blocks = new Set<number>();

  /** True if the block was not revoked yet in this transaction. */
  insert(blocknr: number): boolean {
    if (this.blocks.has(blocknr)) return false;
    this.blocks.add(blocknr);
    return true;
  }

  /** jbd2_journal_cancel_revoke: true if a record was dropped. */
  cancel(blocknr: number): boolean { return this.blocks.delete(blocknr); }

  get size(): number { return this.blocks.size; }
}

/** Records one revoke block holds under the journal's features. */
export function revokeRecordsPerBlock(blockSize: number, incompat: number, csum: boolean): number {
  const rec = incompat & JBD2_INCOMPAT.BIT64 ? 8 : 4;
  return Math.floor((blockSize - REVOKE_HEADER_SIZE - (csum ? BLOCK_TAIL_SIZE : 0)) / rec);
}

/**
 * jbd2_journal_write_revoke_records: the revoke blocks of transaction `tid`,
 * records in block order, each with its tail checksum under csum v2/v3.
 */
export function buildRevokeBlocks(
  table: RevokeTable, tid: number, blockSize: number, incompat: number, csumSeed: number | undefined,
): Uint8Array[] {
  const per = revokeRecordsPerBlock(blockSize, incompat, csumSeed !== undefined);
  const all = [...table.blocks].sort((a, b) => a - b);
  const out: Uint8Array[] = [];
  for (let i = 0; i < all.length; i += per) {
    const b = new Uint8Array(blockSize);
    encodeRevoke(b, blockSize, incompat, tid, all.slice(i, i + per));
    if (csumSeed !== undefined) setBlockTail(csumSeed, b, blockSize);
    out.push(b);
  }
  return out;
}
