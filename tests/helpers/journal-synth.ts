// Builds small in-memory jbd2 journals with the codecs, for edge cases the
// real tools cannot produce on demand (64-bit block numbers, bad tag
// checksums, looping logs, unknown features). Truth for ordinary cases comes
// from the kernel and e2fsprogs, not from here.

import * as J from "../../host/format/jbd2.js";
import type { JournalLog } from "../../host/journal/recovery.js";

export interface SynthTxn {
  tid: number;
  blocks?: Array<{ fsBlock: number; data: Uint8Array }>;
  revokes?: number[];
  commit?: boolean;
  commitSec?: bigint;
}

/** Where each transaction's blocks landed (journal block numbers), to damage them afterwards. */
export interface SynthLayout {
  tid: number;
  descriptor?: number;
  data: number[];
  revoke?: number;
  commit?: number;
}

export interface SynthJournal {
  bs: number;
  blocks: Uint8Array[];
  layout: SynthLayout[];
  /** The journal's checksum seed (v2/v3), to re-seal a block after changing it. */
  seed: number;
  log(): JournalLog;
}

export function synthJournal(opts: {
  bs?: number; length?: number; incompat?: number; compat?: number; sequence: number; start?: number;
  uuid?: Uint8Array; txns: SynthTxn[];
}): SynthJournal {
  const bs = opts.bs ?? 1024;
  const length = opts.length ?? 1024;
  const incompat = opts.incompat ?? 0;
  const uuid = opts.uuid ?? Uint8Array.from({ length: 16 }, (_, i) => i * 17 + 3);
  const blocks: Uint8Array[] = Array.from({ length }, () => new Uint8Array(bs));
  const csum23 = J.hasCsumV2or3(incompat);
  const seed = csum23 ? J.journalCsumSeed(uuid) : 0;
  const start = opts.start ?? 1;

  const sb = J.decodeJournalSuperblock(new Uint8Array(1024));
  Object.assign(sb, {
    header: { magic: J.JBD2_MAGIC, blocktype: J.BLOCKTYPE.SUPERBLOCK_V2, sequence: 0 },
    blockSize: bs, maxLen: length, first: 1, sequence: opts.sequence, start: opts.txns.length ? start : 0,
    featureCompat: opts.compat ?? 0, featureIncompat: incompat, uuid, nrUsers: 1,
    checksumType: csum23 ? J.CHKSUM_TYPE.CRC32C : 0,
  });
  const sbBytes = J.encodeJournalSuperblock(sb);
  if (csum23) J.setJournalSuperblockChecksum(sbBytes);
  blocks[0].set(sbBytes);

  let pos = start;
  const put = (b: Uint8Array) => { const at = pos; blocks[pos] = b; pos = pos + 1 >= length ? 1 : pos + 1; return at; };
  const v1 = ((opts.compat ?? 0) & J.JBD2_COMPAT.CHECKSUM) !== 0;
  const layout: SynthLayout[] = [];
  for (const t of opts.txns) {
    const lay: SynthLayout = { tid: t.tid, data: [] };
    layout.push(lay);
    let crc = 0xffffffff; // v1: crc32_be over descriptors and data as logged (not revoke blocks)
    if (t.blocks?.length) {
      const desc = new Uint8Array(bs);
      J.encodeHeader(desc, { blocktype: J.BLOCKTYPE.DESCRIPTOR, sequence: t.tid });
      let off = J.HEADER_SIZE;
      const datas: Uint8Array[] = [];
      t.blocks.forEach((b, i) => {
        const data = b.data.slice();
        let flags = i === 0 ? 0 : J.TAG_FLAG.SAME_UUID;
        if (J.be32(data, 0) === J.JBD2_MAGIC) { flags |= J.TAG_FLAG.ESCAPE; data.fill(0, 0, 4); }
        if (i === t.blocks!.length - 1) flags |= J.TAG_FLAG.LAST_TAG;
        const checksum = csum23 ? J.tagChecksumValue(incompat, J.dataBlockChecksum(seed, t.tid, data)) : 0;
        off = J.encodeTag(desc, off, incompat, { blockNr: b.fsBlock, flags, checksum, uuid });
        datas.push(data);
      });
      if (csum23) J.setBlockTail(seed, desc, bs);
      lay.descriptor = put(desc);
      if (v1) crc = J.crc32Be(crc, desc);
      for (const d of datas) {
        lay.data.push(put(d));
        if (v1) crc = J.crc32Be(crc, d);
      }
    }
    if (t.revokes?.length) {
      const rb = new Uint8Array(bs);
      J.encodeRevoke(rb, bs, incompat, t.tid, t.revokes);
      if (csum23) J.setBlockTail(seed, rb, bs);
      lay.revoke = put(rb);
    }
    if (t.commit !== false) {
      const cb = new Uint8Array(bs);
      J.encodeCommit(cb, {
        header: { sequence: t.tid },
        chksumType: v1 ? J.CHKSUM_TYPE.CRC32 : 0, chksumSize: v1 ? J.CRC32_CHKSUM_SIZE : 0, chksum: v1 ? [crc] : [],
        commitSec: t.commitSec ?? 1_700_000_000n, commitNsec: 0,
      });
      if (csum23) J.setCommitChecksum(seed, cb, bs);
      lay.commit = put(cb);
    }
  }
  return {
    bs,
    blocks,
    layout,
    seed,
    log: () => ({ blockSize: bs, length, readBlock: (j: number) => blocks[j] }),
  };
}

export function filled(bs: number, v: number): Uint8Array {
  return new Uint8Array(bs).fill(v);
}
