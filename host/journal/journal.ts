// The jbd2 journal loaded for writing (fs/jbd2/journal.c): the journal
// superblock, its checksum features as ext4 sets them at every mount, the
// log's head and tail and the space between them, and the entry points the
// filesystem uses: start a handle, commit, commit a given tid (fsync), and
// destroy (unmount: commit, checkpoint everything, mark the journal empty).
//
// Log space: the log is [first, last) of the journal file, written at
// `head` and wrapping to `first`; `tail` is the first block of the oldest
// transaction not yet checkpointed. `free` counts the blocks between head and
// tail; nothing is ever written when it is zero, and a new transaction starts
// only with room for the largest transaction allowed (a quarter of the
// journal), checkpointing first when there is not (jbd2_log_wait_for_space).

import type { BufferCache } from "../cache/buffer-cache.js";
import { writeDevice } from "../cache/buffer-cache.js";
import type { BufferHead } from "../cache/buffer-head.js";
import { BH } from "../cache/buffer-head.js";
import type { BlockDevice } from "../device/block-device.js";
import { Ext4Error } from "../errors.js";
import {
  BLOCK_TAIL_SIZE, BLOCKTYPE, CHKSUM_TYPE, decodeJournalSuperblock, encodeJournalSuperblock,
  HEADER_SIZE, JBD2_COMPAT, JBD2_DEFAULT_FAST_COMMIT_BLOCKS, JBD2_INCOMPAT, JBD2_KNOWN_INCOMPAT, JBD2_MAGIC, JBD2_MIN_JOURNAL_BLOCKS, journalCsumSeed,
  JOURNAL_SUPERBLOCK_SIZE, setJournalSuperblockChecksum, tagBytes, tidGeq, UUID_SIZE, type JournalSuperblock,
} from "../format/jbd2.js";
import { checkpointAll, checkpointOldest, cleanupJournalTail } from "./checkpoint.js";
import { commitTransaction } from "./commit.js";
import type { Handle, Journal } from "./handle.js";
import { revokeRecordsPerBlock } from "./revoke.js";
import { jhOf, JournalHandle, type JournalHead, Transaction } from "./transaction.js";

/** Blocks kept free beyond a full transaction (jbd2_log_space_left's allowance for rounding). */
const MIN_LOG_RESERVED_BLOCKS = 32;

export interface JournalOptions {
  /** metadata_csum on the filesystem: CSUM_V3 tags. */
  metadataCsum: boolean;
  /** The filesystem has 64bit: 64-bit block numbers in tags and revoke records. */
  is64bit: boolean;
  /** journal_checksum (default with metadata_csum; v1 commit crc32 without it). */
  journalChecksum: boolean;
  journalAsyncCommit: boolean;
  /** Flushes around the commit block and tail updates (barrier, the default). */
  barrier: boolean;
  /** commit=N: seconds a transaction may run before it is committed. */
  commitSeconds: number;
  /** data=journal mount: forget, never revoke (__ext4_forget). */
  dataJournal: boolean;
  /**
   * The filesystem has fast_commit: the last s_num_fc_blks blocks are the
   * fast-commit area, which the log leaves alone (we write full commits
   * only, as the kernel does for any change fast commits cannot express).
   */
  fastCommit?: boolean;
  /**
   * Committed buffers waiting for their checkpoint stay pinned in the cache;
   * past this many the oldest transactions are checkpointed when a new one
   * starts (the kernel's writeback would have sent them home by then).
   */
  maxPinnedBuffers?: number;
}

/** What the filesystem provides: the device, its buffer cache and where each journal block lives. */
export interface JournalSource {
  device: BlockDevice;
  bcache: BufferCache;
  blockSize: number;
  /** Device block of each journal block (index = journal-logical block). */
  blocks: number[];
}

export class Jbd2Journal implements Journal {
  readonly device: BlockDevice;
  readonly bcache: BufferCache;
  readonly bs: number;
  private readonly map: number[];
  /** The journal superblock as we will write it. */
  sb: JournalSuperblock;
  /** Journal block 0 as read (bytes past the 1024-byte superblock kept). */
  private readonly sbBlock: Uint8Array;
  readonly first: number;
  readonly last: number;
  /** Blocks of the fast-commit area after the log (0: none). */
  readonly fcBlocks: number;
  head: number;
  tail: number;
  free: number;
  /** tid of the oldest transaction in the log (s_sequence once written). */
  tailSequence: number;
  /** tid the next transaction gets (j_transaction_sequence). */
  transactionSequence: number;
  /** Last committed tid. */
  commitSequence: number;
  /** s_start == 0 on disk and the tail update deferred to the first commit (JBD2_FLUSHED). */
  flushed: boolean;
  running: Transaction | undefined;
  /** Committed transactions with buffers still to write home, oldest first. */
  readonly checkpoints: Transaction[] = [];
  /** j_max_transaction_buffers: no transaction grows past this many credits. */
  readonly maxTransactionBuffers: number;
  readonly tagsPerDescriptor: number;
  readonly revokesPerBlock: number;
  /** v2/v3 checksum seed, when the journal checksums its blocks. */
  csumSeed: number | undefined;
  /** ms clock for commit=N (tests may replace it). */
  clock: () => number = () => Date.now();
  /** Wall clock for commit block times: [seconds, nanoseconds]. */
  wallClock: () => [number, number] = () => { const ms = Date.now(); return [Math.floor(ms / 1000), (ms % 1000) * 1e6]; };
  /** The ordered-data hook: write back and wait on these inodes' data before the commit block (set by the data path). */
  writeOrderedData: ((inodes: number[], tid: number) => void) | undefined;
  /** Counters for tests and `info`. */
  readonly stats = { commits: 0, checkpoints: 0, tailUpdates: 0, logBlocks: 0, escaped: 0, revokeBlocks: 0 };

  constructor(src: JournalSource, readonly opts: JournalOptions) {
    this.device = src.device;
    this.bcache = src.bcache;
    this.bs = src.blockSize;
    this.map = src.blocks;
    this.sbBlock = new Uint8Array(this.bs);
    this.readLogBlockInto(0, this.sbBlock);
    const sb = decodeJournalSuperblock(this.sbBlock);
    const bad = (why: string) => new Ext4Error("EFSCORRUPTED", `journal superblock: ${why}`, { block: this.map[0] });
    if (sb.header.magic !== JBD2_MAGIC) throw bad("bad magic");
    if (sb.header.blocktype !== BLOCKTYPE.SUPERBLOCK_V2) {
      throw new Ext4Error("EOPNOTSUPP", `journal superblock version ${sb.header.blocktype} cannot be written (v2 only)`);
    }
    if (sb.featureIncompat & ~JBD2_KNOWN_INCOMPAT || sb.featureRoCompat) throw new Ext4Error("EOPNOTSUPP", "unknown journal features");
    if (sb.blockSize !== this.bs) throw bad(`block size ${sb.blockSize} differs from the filesystem's`);
    if (sb.maxLen > this.map.length || sb.maxLen < JBD2_MIN_JOURNAL_BLOCKS) throw bad(`length ${sb.maxLen} out of range`);
    if (sb.first < 1 || sb.first + JBD2_MIN_JOURNAL_BLOCKS > sb.maxLen + 1) throw bad(`first log block ${sb.first} out of range`);
    if (sb.start !== 0) throw new Error("journal loaded for writing before it was recovered");
    this.sb = sb;
    this.first = sb.first;
    // jbd2_journal_initialize_fast_commit: the area comes off the log's end unless that leaves too short a log.
    const fc = opts.fastCommit ? sb.numFcBlocks || JBD2_DEFAULT_FAST_COMMIT_BLOCKS : 0;
    this.fcBlocks = fc && sb.maxLen - fc >= JBD2_MIN_JOURNAL_BLOCKS ? fc : 0;
    this.last = sb.maxLen - this.fcBlocks;
    this.setFeatures();
    // jbd2_journal_recover with s_start == 0, then journal_reset (JBD2_CYCLE_RECORD: resume at s_head).
    this.transactionSequence = (sb.sequence + 1) >>> 0;
    this.head = sb.head >= this.first && sb.head < this.last ? sb.head : this.first;
    this.tail = this.head;
    this.free = this.last - this.first;
    this.tailSequence = this.transactionSequence;
    this.commitSequence = (this.transactionSequence - 1) >>> 0;
    this.flushed = true;
    this.maxTransactionBuffers = Math.floor(sb.maxLen / 4);
    const csum = this.csumSeed !== undefined;
    const tb = tagBytes(this.sb.featureIncompat);
    // commit.c starts a new descriptor when fewer than tag + UUID + tail bytes remain.
    this.tagsPerDescriptor = Math.floor((this.bs - HEADER_SIZE - UUID_SIZE - (csum ? BLOCK_TAIL_SIZE : 0)) / tb);
    this.revokesPerBlock = revokeRecordsPerBlock(this.bs, this.sb.featureIncompat, csum);
  }

  /** set_journal_csum_feature_set, and 64BIT for a 64bit filesystem (ext4_fill_super). */
  private setFeatures(): void {
    const sb = this.sb;
    const o = this.opts;
    const compat = o.metadataCsum ? 0 : JBD2_COMPAT.CHECKSUM;
    const incompat = o.metadataCsum ? JBD2_INCOMPAT.CSUM_V3 : 0;
    sb.featureCompat &= ~JBD2_COMPAT.CHECKSUM;
    sb.featureIncompat &= ~(JBD2_INCOMPAT.CSUM_V2 | JBD2_INCOMPAT.CSUM_V3);
    if (o.journalAsyncCommit) {
      sb.featureCompat |= compat;
      sb.featureIncompat |= incompat | JBD2_INCOMPAT.ASYNC_COMMIT;
    } else {
      if (o.journalChecksum) {
        sb.featureCompat |= compat;
        sb.featureIncompat |= incompat;
      }
      sb.featureIncompat &= ~JBD2_INCOMPAT.ASYNC_COMMIT;
    }
    if (o.is64bit) sb.featureIncompat |= JBD2_INCOMPAT.BIT64;
    sb.featureIncompat &= ~JBD2_INCOMPAT.FAST_COMMIT; // journal_reset turns fast commits off
    if (sb.featureIncompat & JBD2_INCOMPAT.CSUM_V3) {
      sb.checksumType = CHKSUM_TYPE.CRC32C;
      this.csumSeed = journalCsumSeed(sb.uuid);
    } else {
      this.csumSeed = undefined;
    }
  }

  get csumV1(): boolean { return (this.sb.featureCompat & JBD2_COMPAT.CHECKSUM) !== 0; }
  get asyncCommit(): boolean { return (this.sb.featureIncompat & JBD2_INCOMPAT.ASYNC_COMMIT) !== 0; }

  // ---------------------------------------------------------------- handles

  start(credits: number): Handle {
    this.checkAborted();
    if (!Number.isSafeInteger(credits) || credits < 0) throw new Ext4Error("EINVAL", `bad handle credits ${credits}`);
    return new JournalHandle(this, this.join(credits), credits);
  }

  /** start_this_handle: the running transaction with room for `credits`, committing and checkpointing as needed. */
  join(credits: number): Transaction {
    if (credits > this.maxTransactionBuffers) {
      throw new Ext4Error("ENOSPC", `a handle of ${credits} credits is larger than the journal allows (${this.maxTransactionBuffers})`);
    }
    let t = this.running;
    if (t && t.updates === 0 && (t.outstanding + credits > this.maxTransactionBuffers || this.expired(t))) {
      this.commitRunning();
      t = undefined;
    }
    if (t && t.outstanding + credits > this.maxTransactionBuffers) {
      // Handles nest (journal_current_handle); the open one keeps the transaction from committing.
      throw new Ext4Error("ENOSPC", `transaction ${t.tid} is full (${t.outstanding} of ${this.maxTransactionBuffers} credits) while a handle is open`);
    }
    if (!t) {
      this.limitPinned();
      this.waitForSpace();
      t = new Transaction(this.transactionSequence, this.clock());
      this.transactionSequence = (this.transactionSequence + 1) >>> 0;
      this.running = t;
    }
    t.updates++;
    t.outstanding += credits;
    return t;
  }

  private expired(t: Transaction): boolean {
    return this.clock() - t.started >= this.opts.commitSeconds * 1000;
  }

  /** The last handle of `t` stopped: commit it if it is older than commit=N (jbd2_journal_stop). */
  handleStopped(t: Transaction): void {
    if (this.aborted) return;
    if (t === this.running && this.expired(t)) this.commitRunning();
  }

  canExtend(t: Transaction, want: number): boolean {
    return t === this.running && t.outstanding + want <= this.maxTransactionBuffers;
  }

  /** Log blocks a transaction of `credits` buffers can need, with descriptors and its commit block. */
  private logSpaceFor(credits: number): number {
    return credits + Math.ceil(credits / this.tagsPerDescriptor) + 1;
  }

  /** jbd2_log_space_left. */
  get spaceLeft(): number { return Math.max(0, this.free - MIN_LOG_RESERVED_BLOCKS); }

  /** Buffers on checkpoint lists (pinned in the cache until written home). */
  get pinnedBuffers(): number {
    let n = 0;
    for (const t of this.checkpoints) n += t.cpList.size;
    return n;
  }

  private limitPinned(): void {
    const max = this.opts.maxPinnedBuffers;
    if (max === undefined) return;
    while (this.checkpoints.length && this.pinnedBuffers > max) checkpointOldest(this);
  }

  /** __jbd2_log_wait_for_space: room for a whole transaction before a new one starts. */
  private waitForSpace(): void {
    const need = this.logSpaceFor(this.maxTransactionBuffers);
    while (this.spaceLeft < need) {
      if (this.checkpoints.length) checkpointOldest(this);
      else if (cleanupJournalTail(this)) continue;
      else throw new Ext4Error("EIO", `journal space exhausted: ${this.free} free blocks and nothing left to checkpoint`);
    }
  }

  // ---------------------------------------------------------------- commits

  /** Commits the running transaction, if there is one. No handle may be open. */
  commitRunning(): void {
    this.checkAborted();
    const t = this.running;
    if (!t) return;
    if (t.updates !== 0) throw new Error(`commit of transaction ${t.tid} with ${t.updates} handle(s) open`);
    try {
      commitTransaction(this, t);
    } catch (e) {
      // jbd2_journal_abort: a commit that failed half-way leaves nothing we could safely go on from.
      this.aborted = e instanceof Error ? e : new Error(String(e));
      throw e;
    }
  }

  /** Set when a commit or checkpoint failed (the journal is aborted: no more writes). */
  aborted: Error | undefined;

  /**
   * jbd2_journal_abort (ext4_error under errors=remount-ro or panic): nothing
   * more is committed or checkpointed; the log keeps what was committed for
   * the next mount's replay. Open handles may still stop.
   */
  abort(why: Error): void {
    if (!this.aborted) this.aborted = why;
  }

  private checkAborted(): void {
    if (this.aborted) throw new Ext4Error("EIO", `the journal was aborted after an error: ${this.aborted.message}`, { cause: this.aborted });
  }

  /**
   * fsync's jbd2_complete_transaction / ext4_fsync_journal: commits `tid`
   * unless it is already committed; true if a commit ran. A caller whose
   * tid needed no commit still flushes the device (see syncTid).
   */
  forceCommit(tid: number): boolean {
    if (tidGeq(this.commitSequence, tid)) return false;
    if (this.running && this.running.tid === tid) {
      this.commitRunning();
      return true;
    }
    return false;
  }

  /** ext4_sync_file's journal part: commit `tid` if needed, else just flush (an overwrite-only fsync). */
  syncTid(tid: number): void {
    if (!this.forceCommit(tid) && this.opts.barrier) this.device.flush();
  }

  /** Unmount (jbd2_journal_destroy): commit, checkpoint all, then mark the journal empty. */
  destroy(): void {
    if (this.aborted) {
      // Leave the log for the next mount's recovery, as an aborted jbd2 journal does; nothing more reaches home.
      this.discardAll();
      return;
    }
    if (this.running && this.running.updates > 0) throw new Error("unmount with a journal handle open");
    this.commitRunning();
    checkpointAll(this);
    if (this.sb.start !== 0) {
      // jbd2_journal_destroy: j_tail_sequence = ++j_transaction_sequence, then jbd2_mark_journal_empty.
      this.transactionSequence = (this.transactionSequence + 1) >>> 0;
      this.tailSequence = this.transactionSequence;
      this.sb.head = this.head;
      this.writeSuperblock(this.tailSequence, 0, true);
    }
  }

  /** After an abort: every buffer the journal knows is dropped unwritten. */
  private discardAll(): void {
    const all = new Set<BufferHead>();
    for (const t of this.checkpoints) for (const bh of t.cpList) all.add(bh);
    const r = this.running;
    if (r) for (const set of [r.buffers, r.reserved, r.forgets]) for (const bh of set) all.add(bh);
    for (const bh of all) {
      const jh = jhOf(bh);
      if (jh) { jh.transaction = undefined; jh.cpTransaction = undefined; jh.forgetIn = undefined; }
      this.bcache.clearDirty(bh);
      this.detach(bh);
    }
    this.checkpoints.length = 0;
    this.running = undefined;
  }

  // ---------------------------------------------------------------- buffers

  /** do_get_write_access / get_create_access: the buffer joins `t` (reserved until dirtied). */
  fileReserved(t: Transaction, bh: BufferHead): void {
    const jh = this.attach(bh);
    this.cancelRevoke(t, bh);
    if (jh.transaction === t) return;
    if (jh.transaction) throw new Error(`buffer ${bh.blocknr} belongs to transaction ${jh.transaction.tid}, not the running ${t.tid}`);
    if (jh.forgetIn === t) {
      // Forgotten, then journaled again in the same transaction: no longer dropped at commit.
      t.forgets.delete(bh);
      jh.forgetIn = undefined;
    }
    jh.transaction = t;
    t.reserved.add(bh);
    // A committed copy waiting for its checkpoint: nobody may write the newer state home now.
    this.bcache.clearDirty(bh);
  }

  /** jbd2_journal_forget: true if the buffer had taken a credit in `t` (given back to the handle). */
  forgetBuffer(t: Transaction, bh: BufferHead): boolean {
    const jh = jhOf(bh);
    bh.clear(BH.JBDDIRTY);
    if (!jh) {
      this.bcache.clearDirty(bh);
      return false;
    }
    const credited = t.buffers.delete(bh);
    t.reserved.delete(bh);
    if (jh.transaction === t) jh.transaction = undefined;
    this.bcache.clearDirty(bh);
    if (jh.cpTransaction) {
      // An older committed copy: keep it until this transaction commits, then drop it unwritten.
      jh.forgetIn = t;
      t.forgets.add(bh);
    } else {
      this.detach(bh);
    }
    return credited;
  }

  /** jbd2_journal_revoke's record; returns the revoke blocks newly needed (0 or 1). */
  revoke(t: Transaction, blocknr: number): number {
    this.sb.featureIncompat |= JBD2_INCOMPAT.REVOKE;
    if (!t.revokes.insert(blocknr)) return 0;
    const need = Math.ceil(t.revokes.size / this.revokesPerBlock);
    if (need <= t.revokeBlocks) return 0;
    t.revokeBlocks = need;
    return 1;
  }

  /** jbd2_journal_cancel_revoke: a block journaled again must not stay revoked in this transaction. */
  private cancelRevoke(t: Transaction, bh: BufferHead): void {
    if (t.revokes.cancel(bh.blocknr) || bh.test(BH.REVOKED)) bh.clear(BH.REVOKED);
  }

  /** jbd2_journal_add_journal_head: the journal keeps a reference while it knows the buffer. */
  attach(bh: BufferHead): JournalHead {
    let jh = jhOf(bh);
    if (!jh) {
      jh = {};
      const same = this.bcache.getblk(bh.blocknr);
      if (same !== bh) throw new Error(`buffer cache returned another head for block ${bh.blocknr}`);
      bh.jh = jh;
    }
    return jh;
  }

  /** Drops the journal's record of a buffer it no longer needs. */
  detach(bh: BufferHead): void {
    const jh = jhOf(bh);
    if (!jh || jh.transaction || jh.cpTransaction || jh.forgetIn) return;
    bh.jh = undefined;
    this.bcache.brelse(bh);
  }

  /** A committed transaction whose buffers are all home leaves the checkpoint list. */
  dropIfCheckpointed(t: Transaction): void {
    if (t.cpList.size) return;
    const i = this.checkpoints.indexOf(t);
    if (i >= 0) this.checkpoints.splice(i, 1);
  }

  // ---------------------------------------------------------------- log I/O

  /** Journal-logical block to device block. */
  deviceBlock(j: number): number {
    const p = this.map[j];
    if (p === undefined) throw new Ext4Error("EFSCORRUPTED", `journal block ${j} is not mapped`);
    return p;
  }

  private readLogBlockInto(j: number, dst: Uint8Array): void {
    this.device.read(this.deviceBlock(j) * this.bs, dst);
  }

  /** Writes the next log block at the head. Never past the tail: the log space check is the lwext4 #86 guard. */
  writeLogBlock(data: Uint8Array): number {
    if (this.free <= 0) throw new Error(`journal full at block ${this.head}: would overwrite transaction ${this.tailSequence}, not yet checkpointed`);
    const at = this.head;
    writeDevice(this.device, this.deviceBlock(at) * this.bs, data);
    this.head = at + 1 === this.last ? this.first : at + 1;
    this.free--;
    this.stats.logBlocks++;
    return at;
  }

  /** Log blocks from `from` to `to` going forward (the space a tail move frees). */
  distance(from: number, to: number): number {
    const len = this.last - this.first;
    return (to - from + len) % len;
  }

  /**
   * jbd2_write_superblock: s_sequence and s_start (0: empty), with a flush
   * before and after on barrier journals when `durable` (REQ_PREFLUSH|REQ_FUA).
   */
  writeSuperblock(sequence: number, start: number, durable: boolean): void {
    this.sb.sequence = sequence >>> 0;
    this.sb.start = start;
    // A log that wraps before the fast-commit area says so (recovery's j_last depends on it); an empty one
    // drops the flag, as jbd2_mark_journal_empty does, so older tools still take a clean image.
    if (this.fcBlocks && start !== 0) this.sb.featureIncompat |= JBD2_INCOMPAT.FAST_COMMIT;
    else this.sb.featureIncompat &= ~JBD2_INCOMPAT.FAST_COMMIT;
    const raw = encodeJournalSuperblock(this.sb, this.sbBlock);
    if (this.csumSeed !== undefined) setJournalSuperblockChecksum(raw);
    this.sbBlock.set(raw.subarray(0, JOURNAL_SUPERBLOCK_SIZE));
    if (durable && this.opts.barrier) this.device.flush();
    writeDevice(this.device, this.deviceBlock(0) * this.bs, this.sbBlock);
    if (durable && this.opts.barrier) this.device.flush();
    this.stats.tailUpdates++;
  }
}
