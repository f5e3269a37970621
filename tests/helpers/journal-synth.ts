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

export interface SynthJournal {
  bs: number;
  blocks: Uint8Array[];
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
  const put = (b: Uint8Array) => { blocks[pos] = b; pos = pos + 1 >= length ? 1 : pos + 1; };
  for (const t of opts.txns) {
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
      put(desc);
      for (const d of datas) put(d);
    }
    if (t.revokes?.length) {
      const rb = new Uint8Array(bs);
      J.encodeRevoke(rb, bs, incompat, t.tid, t.revokes);
      if (csum23) J.setBlockTail(seed, rb, bs);
      put(rb);
    }
    if (t.commit !== false) {
      const cb = new Uint8Array(bs);
      J.encodeCommit(cb, {
        header: { sequence: t.tid }, chksumType: 0, chksumSize: 0, chksum: [],
        commitSec: t.commitSec ?? 1_700_000_000n, commitNsec: 0,
      });
      if (csum23) J.setCommitChecksum(seed, cb, bs);
      put(cb);
    }
  }
  return {
    bs,
    blocks,
    log: () => ({ blockSize: bs, length, readBlock: (j: number) => blocks[j] }),
  };
}

export function filled(bs: number, v: number): Uint8Array {
  return new Uint8Array(bs).fill(v);
}
