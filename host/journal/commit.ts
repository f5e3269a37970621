// Committing a transaction (fs/jbd2/commit.c, jbd2_journal_commit_transaction):
// ordered data first, then the revoke blocks, descriptor blocks each followed
// by the copies of the buffers they tag (escaped where a block begins with
// the jbd2 magic, in the log copy only), a device flush, the commit block,
// another flush (barrier; with async_commit one flush after the commit
// block). Then the buffers go to the transaction's checkpoint list, dirty for
// their home write, and the commit callbacks run.

import type { BufferHead } from "../cache/buffer-head.js";
import { BH } from "../cache/buffer-head.js";
import {
  be32, BLOCKTYPE, CHKSUM_TYPE, CRC32_CHKSUM_SIZE, crc32Be, dataBlockChecksum, encodeCommit, encodeHeader, encodeTag,
  JBD2_MAGIC, setBlockTail, setCommitChecksum, TAG_FLAG, tagChecksumValue,
} from "../format/jbd2.js";
import type { Jbd2Journal } from "./journal.js";
import { buildRevokeBlocks } from "./revoke.js";
import { jhOf, type Transaction, TState } from "./transaction.js";

export function commitTransaction(j: Jbd2Journal, t: Transaction): void {
  // The engine is synchronous: commits run between operations, never under an open handle.
  if (t.updates !== 0) throw new Error(`commit of transaction ${t.tid} with ${t.updates} handle(s) open`);
  if (j.running !== t) throw new Error(`commit of transaction ${t.tid}, which is not running`);
  j.running = undefined;

  if (j.flushed) {
    // The first commit after a clean load writes the tail (JBD2_FLUSHED); the commit's flushes make it durable.
    j.writeSuperblock(j.tailSequence, j.tail, false);
    j.flushed = false;
  }
  // Reserved-only buffers leave the transaction unlogged.
  for (const bh of t.reserved) {
    if (t.buffers.has(bh)) continue;
    const jh = jhOf(bh)!;
    if (jh.transaction === t) jh.transaction = undefined;
    if (jh.cpTransaction) j.bcache.markDirty(bh);
    j.detach(bh);
  }
  t.reserved.clear();

  // data=ordered: the inodes' data reaches home before the commit block.
  if (t.orderedInodes.size && j.writeOrderedData) j.writeOrderedData([...t.orderedInodes], t.tid);

  t.logStart = j.head;
  const before = j.stats.logBlocks;
  const incompat = j.sb.featureIncompat;
  const seed = j.csumSeed;
  const bs = j.bs;

  for (const b of buildRevokeBlocks(t.revokes, t.tid, bs, incompat, seed)) {
    j.writeLogBlock(b);
    j.stats.revokeBlocks++;
  }

  let crc = 0xffffffff; // v1 (COMPAT_CHECKSUM): crc32_be over descriptors and the blocks they tag
  const list = [...t.buffers];
  for (let i = 0; i < list.length; i += j.tagsPerDescriptor) {
    const group = list.slice(i, i + j.tagsPerDescriptor);
    const desc = new Uint8Array(bs);
    encodeHeader(desc, { blocktype: BLOCKTYPE.DESCRIPTOR, sequence: t.tid });
    const copies: Uint8Array[] = [];
    let off = 12;
    group.forEach((bh, k) => {
      const copy = bh.data.slice();
      let flags = k === 0 ? 0 : TAG_FLAG.SAME_UUID;
      if (be32(copy, 0) === JBD2_MAGIC) {
        // jbd2_journal_write_metadata_buffer: escaped in the log copy, never in the buffer.
        copy[0] = copy[1] = copy[2] = copy[3] = 0;
        flags |= TAG_FLAG.ESCAPE;
        j.stats.escaped++;
      }
      if (k === group.length - 1) flags |= TAG_FLAG.LAST_TAG;
      const checksum = seed !== undefined ? tagChecksumValue(incompat, dataBlockChecksum(seed, t.tid, copy)) : 0;
      off = encodeTag(desc, off, incompat, { blockNr: bh.blocknr, flags, checksum, uuid: j.sb.uuid });
      copies.push(copy);
    });
    if (seed !== undefined) setBlockTail(seed, desc, bs);
    j.writeLogBlock(desc);
    if (j.csumV1) crc = crc32Be(crc, desc);
    for (const c of copies) {
      j.writeLogBlock(c);
      if (j.csumV1) crc = crc32Be(crc, c);
    }
  }

  // The log blocks are durable before the commit block that makes them count.
  if (j.opts.barrier && !j.asyncCommit) j.device.flush();
  const commit = new Uint8Array(bs);
  const [sec, nsec] = j.wallClock();
  encodeCommit(commit, {
    header: { sequence: t.tid },
    chksumType: j.csumV1 && seed === undefined ? CHKSUM_TYPE.CRC32 : 0,
    chksumSize: j.csumV1 && seed === undefined ? CRC32_CHKSUM_SIZE : 0,
    chksum: j.csumV1 && seed === undefined ? [crc] : [],
    commitSec: BigInt(sec), commitNsec: nsec,
  });
  if (seed !== undefined) setCommitChecksum(seed, commit, bs);
  j.writeLogBlock(commit);
  if (j.opts.barrier) j.device.flush();
  t.logBlocks = j.stats.logBlocks - before;

  // The transaction is durable: its buffers now wait for the checkpoint.
  t.state = TState.Committed;
  j.commitSequence = t.tid;
  j.stats.commits++;
  for (const bh of t.buffers) refile(j, t, bh);
  for (const bh of t.forgets) dropForgotten(j, bh);
  for (const b of t.revokes.blocks) j.bcache.peek(b)?.clear(BH.REVOKED);
  t.buffers.clear();
  t.forgets.clear();
  if (t.cpList.size) j.checkpoints.push(t);
  else t.state = TState.Finished;
  for (const fn of t.callbacks.splice(0)) fn();
}

/** __jbd2_journal_refile_buffer + the checkpoint insert: off any older checkpoint list, onto this one's. */
function refile(j: Jbd2Journal, t: Transaction, bh: BufferHead): void {
  const jh = jhOf(bh)!;
  jh.transaction = undefined;
  bh.clear(BH.JBDDIRTY | BH.NEW);
  const old = jh.cpTransaction;
  if (old && old !== t) {
    old.cpList.delete(bh);
    j.dropIfCheckpointed(old);
  }
  jh.cpTransaction = t;
  t.cpList.add(bh);
  j.bcache.markDirty(bh);
}

/** A buffer forgotten in the committed transaction: its older copies are never written home. */
function dropForgotten(j: Jbd2Journal, bh: BufferHead): void {
  const jh = jhOf(bh);
  if (!jh) return;
  jh.forgetIn = undefined;
  const old = jh.cpTransaction;
  if (old) {
    old.cpList.delete(bh);
    jh.cpTransaction = undefined;
    j.dropIfCheckpointed(old);
  }
  j.bcache.clearDirty(bh);
  j.detach(bh);
}
