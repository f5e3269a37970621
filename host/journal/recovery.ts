// jbd2 journal recovery planning: works out, without writing anything, what
// replaying the journal would put where. Same three passes as the kernel
// (fs/jbd2/recovery.c) and e2fsck: SCAN finds the end of the last complete
// transaction, REVOKE collects revocations, REPLAY gathers the tagged blocks.
// Unlike the C code every walk is bounded by the log size, and every bad
// field is an Ext4Error naming the journal block.
//
// Where the kernel's journal load fails, it fails in one of two ways, and the
// plan says which: before anything is replayed (a bad descriptor or revoke
// block checksum in a committed transaction: planRecovery throws EFSBADCRC),
// or after the replay has been written home (a data block failing its tag
// checksum, EFSBADCRC; a failed commit block, EFSCORRUPTED: `loadError`).
// In both the journal is left needing recovery. docs/design.md has the table.

import { Ext4Error } from "../errors.js";
import {
  BLOCKTYPE, JBD2_COMPAT, JBD2_INCOMPAT, JBD2_KNOWN_INCOMPAT, JBD2_KNOWN_RO_COMPAT, JBD2_MAGIC,
  JBD2_MIN_JOURNAL_BLOCKS, CHKSUM_TYPE, CRC32_CHKSUM_SIZE, JOURNAL_SUPERBLOCK_SIZE,
  BLOCK_TAIL_SIZE, TAG_FLAG, be32, commitChecksum, commitChecksumHeaderOnly, crc32Be, dataBlockChecksum,
  decodeCommit, decodeDescriptorTags, decodeHeader, decodeJournalSuperblock, decodeRevoke, fastCommitBlocks,
  hasCsumV2or3, journalCsumSeed, setBe32, setJournalSuperblockChecksum, tagChecksumMatches, tidGeq, tidGt,
  verifyBlockTail, verifyJournalSuperblockChecksum, type JournalSuperblock,
} from "../format/jbd2.js";

export interface JournalLog {
  blockSize: number;
  /** Journal length in blocks (the journal inode's size / blockSize). */
  length: number;
  /** Reads journal-logical block j (0 = the journal superblock). Returns a copy or a stable view. */
  readBlock(j: number): Uint8Array;
}

export interface RecoveryPlan {
  /** false if s_start == 0 (the journal is clean). */
  needed: boolean;
  /** fs block number -> the bytes to put there (escape already undone), last writer wins, revokes applied. */
  blocks: Map<number, Uint8Array>;
  /** Number of complete transactions replayed. */
  transactions: number;
  firstTid: number;
  /** The last replayed tid (firstTid - 1 when none was). */
  lastTid: number;
  /** The tid the next transaction must use (one past the first tid not found, as jbd2 does). */
  nextTid: number;
  /**
   * Journal block 0 after recovery (a whole block: s_start = 0, s_sequence =
   * nextTid, checksum updated; s_errno = -EINVAL after a failed commit, as
   * e2fsck does). The caller writes it to journal block 0 when it may write.
   * When `needed` is false this is block 0 unchanged.
   */
  cleanSuperblock: Uint8Array;
  /** Things worth telling that do not fail the load (e.g. fast commits not replayed). */
  warnings: string[];
  /** tid of a commit block whose checksum failed (replay stopped before it); the kernel's j_failed_commit. */
  failedCommit?: number;
  /** The fast-commit area holds records for the transaction after the last replayed one (not replayed here). */
  fastCommitsPending?: boolean;
  /**
   * Set when the kernel's journal load fails after the replay: jbd2 writes
   * `blocks` home, then fails the load (EFSBADCRC for data blocks that failed
   * their tag checksum, which are left out of `blocks`; EFSCORRUPTED for a
   * failed commit), so the journal stays as it is and still needs recovery.
   * The caller must not write `cleanSuperblock` then.
   */
  loadError?: Ext4Error;
  /** Revocation records seen (block -> highest revoking tid). */
  revoked: Map<number, number>;
}

export interface RecoveryOptions {
  /** Skip every checksum check (superblock, descriptor, commit, data tags). */
  ignoreChecksums?: boolean;
  /** Filesystem size in blocks: a replayed block at or past it is corruption. */
  fsBlockCount?: number;
}

const EINVAL = 22;

enum Pass { Scan, Revoke, Replay }

/** The validated journal geometry and features recovery works with. */
interface Geometry {
  sb: JournalSuperblock;
  bs: number;
  incompat: number;
  first: number;
  /** End of the circular log (exclusive); the fast-commit area follows it. */
  last: number;
  maxLen: number;
  csum23: boolean;
  csumV1: boolean;
  async: boolean;
  seed: number;
}

export function planRecovery(log: JournalLog, opts: RecoveryOptions = {}): RecoveryPlan {
  const sbBlock = readLogBlock(log, 0, log.length);
  const g = checkSuperblock(log, sbBlock, opts);
  const sb = g.sb;

  if (sb.start === 0) {
    return {
      needed: false, blocks: new Map(), transactions: 0,
      firstTid: sb.sequence, lastTid: (sb.sequence - 1) >>> 0, nextTid: (sb.sequence + 1) >>> 0,
      cleanSuperblock: sbBlock.slice(), warnings: [], revoked: new Map(),
    };
  }
  if (sb.start < g.first || sb.start >= g.last) {
    throw badJournal(0, `log start ${sb.start} is outside the log area [${g.first}, ${g.last})`);
  }

  const walker = new LogWalker(log, g, opts);
  walker.run(Pass.Scan);
  walker.run(Pass.Revoke);
  walker.run(Pass.Replay);

  const end = walker.endTid;
  const warnings = walker.warnings;
  const fastCommitsPending = (g.incompat & JBD2_INCOMPAT.FAST_COMMIT) !== 0 && noteFastCommits(log, g, end, warnings);

  // jbd2_journal_recover's error first (the bad data blocks), then
  // jbd2_journal_load's j_failed_commit check.
  let loadError: Ext4Error | undefined;
  const bad = walker.badData;
  if (bad.length) {
    const b = bad[0];
    loadError = new Ext4Error("EFSBADCRC",
      `journal block ${b.at}: data for fs block ${b.fsBlock} in transaction ${b.tid} fails its checksum` +
      (bad.length > 1 ? ` (and ${bad.length - 1} more)` : "") +
      "; the kernel replays every other block and then fails the journal load", { block: b.at });
  } else if (walker.failedCommit !== undefined) {
    loadError = new Ext4Error("EFSCORRUPTED",
      `journal transaction ${walker.failedCommit} is corrupt (bad commit block); the kernel replays the transactions before it and then fails the journal load`,
      { block: walker.failedCommitAt });
  }

  const clean = sbBlock.slice();
  setBe32(clean, 0x1c, 0);
  setBe32(clean, 0x18, (end + 1) >>> 0);
  if (walker.failedCommit !== undefined) setBe32(clean, 0x20, -EINVAL >>> 0);
  if (g.csum23) setJournalSuperblockChecksum(clean);

  return {
    needed: true,
    blocks: walker.blocks,
    transactions: (end - sb.sequence) >>> 0,
    firstTid: sb.sequence,
    lastTid: (end - 1) >>> 0,
    nextTid: (end + 1) >>> 0,
    cleanSuperblock: clean,
    warnings,
    failedCommit: walker.failedCommit,
    fastCommitsPending,
    loadError,
    revoked: walker.revoked,
  };
}

function checkSuperblock(log: JournalLog, block: Uint8Array, opts: RecoveryOptions): Geometry {
  const bs = log.blockSize;
  const at = { block: 0 };
  const h = decodeHeader(block);
  if (h.magic !== JBD2_MAGIC) throw badJournal(0, `bad superblock magic 0x${h.magic.toString(16)}`);
  if (h.blocktype !== BLOCKTYPE.SUPERBLOCK_V1 && h.blocktype !== BLOCKTYPE.SUPERBLOCK_V2) {
    if (h.blocktype === BLOCKTYPE.DESCRIPTOR || h.blocktype === BLOCKTYPE.COMMIT || h.blocktype === BLOCKTYPE.REVOKE) {
      throw badJournal(0, `a log block (type ${h.blocktype}) where the superblock belongs`);
    }
    throw new Ext4Error("EOPNOTSUPP", `unsupported journal superblock version (type ${h.blocktype})`, at);
  }
  const sb = decodeJournalSuperblock(block);
  if (sb.nrUsers > 1) throw new Ext4Error("EOPNOTSUPP", `journal shared by ${sb.nrUsers} filesystems`, at);
  const unknownIncompat = sb.featureIncompat & ~JBD2_KNOWN_INCOMPAT;
  if (unknownIncompat) {
    throw new Ext4Error("EOPNOTSUPP", `unknown journal incompat features 0x${unknownIncompat.toString(16)}`, at);
  }
  const unknownRo = sb.featureRoCompat & ~JBD2_KNOWN_RO_COMPAT;
  if (unknownRo) throw new Ext4Error("EOPNOTSUPP", `unknown journal ro_compat features 0x${unknownRo.toString(16)}`, at);

  const incompat = sb.featureIncompat;
  const csum23 = hasCsumV2or3(incompat);
  const csumV1 = (sb.featureCompat & JBD2_COMPAT.CHECKSUM) !== 0;
  if ((incompat & JBD2_INCOMPAT.CSUM_V2) && (incompat & JBD2_INCOMPAT.CSUM_V3)) {
    throw badJournal(0, "both checksum v2 and v3 are set");
  }
  if (csum23 && csumV1) throw badJournal(0, "both checksum v1 and v2/v3 are set");
  if (csum23) {
    if (sb.checksumType !== CHKSUM_TYPE.CRC32C) throw badJournal(0, `unknown checksum type ${sb.checksumType}`);
    if (!opts.ignoreChecksums && !verifyJournalSuperblockChecksum(block)) {
      throw badJournal(0, "superblock checksum mismatch");
    }
  }
  if (sb.blockSize !== bs) throw badJournal(0, `block size ${sb.blockSize} differs from the filesystem's ${bs}`);
  if (sb.maxLen > log.length) throw badJournal(0, `claims ${sb.maxLen} blocks but the journal inode holds ${log.length}`);
  const maxLen = sb.maxLen;
  if (maxLen < JBD2_MIN_JOURNAL_BLOCKS) throw badJournal(0, `journal too short: ${maxLen} blocks`);
  const fc = fastCommitBlocks(sb);
  if (maxLen - fc < JBD2_MIN_JOURNAL_BLOCKS) throw badJournal(0, `fast-commit area of ${fc} blocks leaves too short a log`);
  const last = maxLen - fc;
  if (sb.first === 0 || sb.first >= last) throw badJournal(0, `first log block ${sb.first} out of range`);
  return {
    sb, bs, incompat, first: sb.first, last, maxLen, csum23, csumV1,
    async: (incompat & JBD2_INCOMPAT.ASYNC_COMMIT) !== 0,
    seed: csum23 ? journalCsumSeed(sb.uuid) : 0,
  };
}

/** One walk of the log per pass; state that SCAN finds bounds the later passes. */
class LogWalker {
  /**
   * The first tid not to replay. 0 means "not found yet", as in the kernel's
   * recovery_info, quirks included: a bad commit at tid 0 does not end the
   * scan (async_commit) and is no j_failed_commit (the kernel mounts).
   */
  endTid = 0;
  /** Journal block of the commit that set endTid. */
  private endAt = 0;
  failedCommit: number | undefined;
  failedCommitAt: number | undefined;
  /** Data blocks that failed their tag checksum in REPLAY (skipped, as the kernel does). */
  readonly badData: Array<{ at: number; fsBlock: number; tid: number }> = [];
  readonly blocks = new Map<number, Uint8Array>();
  readonly revoked = new Map<number, number>();
  readonly warnings: string[] = [];
  private readonly areaLen: number;

  constructor(private readonly log: JournalLog, private readonly g: Geometry, private readonly opts: RecoveryOptions) {
    this.areaLen = g.last - g.first;
  }

  /** The log position n blocks on, wrapping from `last` back to `first`. */
  private next(pos: number, n = 1): number {
    return this.g.first + ((pos - this.g.first + n) % this.areaLen);
  }

  private read(j: number): Uint8Array {
    return readLogBlock(this.log, j, this.g.maxLen);
  }

  run(pass: Pass): void {
    const g = this.g;
    const check = !this.opts.ignoreChecksums;
    let tid = g.sb.sequence;
    let pos = g.sb.start;
    let consumed = 0; // log blocks stepped over; a valid log never exceeds the area
    let crc1 = 0xffffffff;
    let staleSuspect: number | undefined; // journal block whose tail checksum failed in SCAN
    let lastCommitTime = 0n;

    walk: for (;;) {
      if (pass !== Pass.Scan && tidGeq(tid, this.endTid)) break;
      if (consumed > this.areaLen) {
        throw badJournal(pos, `the log runs past its own start (transaction ${tid})`);
      }
      const here = pos;
      const blk = this.read(here);
      pos = this.next(pos);
      consumed++;
      const h = decodeHeader(blk);
      if (h.magic !== JBD2_MAGIC || h.sequence !== tid) break;

      switch (h.blocktype) {
        case BLOCKTYPE.DESCRIPTOR: {
          if (g.csum23 && check && !verifyBlockTail(g.seed, blk, g.bs)) {
            // Lazy journal init can leave stale blocks; SCAN only decides at the commit.
            if (pass !== Pass.Scan) throw badCrc(here, `descriptor checksum mismatch (transaction ${tid})`);
            staleSuspect ??= here;
          }
          const tags = decodeDescriptorTags(blk, g.bs, g.incompat);
          if (pass === Pass.Replay) {
            for (const tag of tags) {
              const at = pos;
              const data = this.read(at);
              pos = this.next(pos);
              consumed++;
              this.replayBlock(tag, data, tid, at);
            }
          } else if (pass === Pass.Scan && g.csumV1 && check && staleSuspect === undefined && !this.endTid) {
            crc1 = crc32Be(crc1, blk);
            for (let i = 0; i < tags.length; i++) {
              crc1 = crc32Be(crc1, this.read(pos));
              pos = this.next(pos);
              consumed++;
            }
          } else {
            pos = this.next(pos, tags.length);
            consumed += tags.length;
          }
          continue;
        }

        case BLOCKTYPE.COMMIT: {
          if (pass !== Pass.Scan) { tid = (tid + 1) >>> 0; continue; }
          const c = decodeCommit(blk);
          if (staleSuspect !== undefined) {
            // A bad descriptor/revoke checksum: stale log if time went backwards, else real
            // damage, and the load fails before anything is replayed.
            if (c.commitSec >= lastCommitTime) {
              throw badCrc(staleSuspect, `checksum mismatch in committed transaction ${tid}; nothing was replayed`);
            }
            break walk;
          }
          let ok = true;
          if (g.csumV1) {
            // async_commit: a commit after a failed one means the failed one was real.
            if (this.endTid) { this.setFailedCommit(this.endTid, this.endAt); break walk; }
            const found = c.chksum[0];
            const match = (crc1 === found && c.chksumType === CHKSUM_TYPE.CRC32 && c.chksumSize === CRC32_CHKSUM_SIZE) ||
              (c.chksumType === 0 && c.chksumSize === 0 && found === 0);
            ok = match || !check;
            if (ok) crc1 = 0xffffffff;
          } else if (g.csum23 && check) {
            const stored = be32(blk, 16);
            ok = commitChecksum(g.seed, blk, g.bs) === stored || commitChecksumHeaderOnly(g.seed, blk, g.bs) === stored;
          }
          if (!ok) {
            if (c.commitSec < lastCommitTime) break walk; // stale: end quietly
            this.endTid = tid;
            this.endAt = here;
            if (!g.async) { this.setFailedCommit(tid, here); break walk; }
            this.warnings.push(`journal transaction ${tid} has a bad commit block (async_commit): replay ends before it`);
          }
          lastCommitTime = c.commitSec;
          tid = (tid + 1) >>> 0;
          continue;
        }

        case BLOCKTYPE.REVOKE: {
          if (pass === Pass.Scan && g.csum23 && check && !verifyBlockTail(g.seed, blk, g.bs)) staleSuspect ??= here;
          // Records are read only for committed transactions (as e2fsck does), so a
          // torn revoke block in the unfinished tail transaction is harmless.
          if (pass !== Pass.Revoke) continue;
          const rev = decodeRevoke(blk, g.bs, g.incompat);
          const room = g.bs - (g.csum23 ? BLOCK_TAIL_SIZE : 0);
          // The kernel fails the load here (EINVAL) before replaying; a count below
          // the header just holds no records.
          if (rev.count > room) throw badJournal(here, `revoke block byte count ${rev.count} out of range`);
          for (const b of rev.blocks) {
            if (b === null) { this.warnings.push(`journal block ${here}: revoke record beyond 2^53 ignored`); continue; }
            const prev = this.revoked.get(b);
            if (prev === undefined || tidGt(tid, prev)) this.revoked.set(b, tid);
          }
          continue;
        }

        default:
          break walk; // unknown type (fast-commit, superblock): end of log
      }
    }

    if (pass === Pass.Scan) {
      if (!this.endTid) this.endTid = tid;
    } else if (tid !== this.endTid) {
      throw badJournal(pos, `recovery pass ${Pass[pass]} ended at transaction ${tid}, the scan at ${this.endTid}`);
    }
  }

  private setFailedCommit(tid: number, at: number): void {
    if (tid === 0) {
      // The kernel keeps j_failed_commit = 0, which reads as "none": it mounts.
      this.warnings.push("journal transaction 0 has a bad commit block: replay ends before it (the kernel does not fail the load for tid 0)");
      return;
    }
    this.failedCommit = tid;
    this.failedCommitAt = at;
  }

  private replayBlock(tag: ReturnType<typeof decodeDescriptorTags>[number], data: Uint8Array, tid: number, at: number): void {
    const g = this.g;
    if (tag.blockNr === null) throw badJournal(at, `tag names a block beyond 2^53 (transaction ${tid})`);
    const fsBlock = tag.blockNr;
    const rev = this.revoked.get(fsBlock);
    if (rev !== undefined && !tidGt(tid, rev)) return; // revoked by this or a later transaction
    if (g.csum23 && !this.opts.ignoreChecksums &&
        !tagChecksumMatches(g.incompat, tag, dataBlockChecksum(g.seed, tid, data))) {
      this.badData.push({ at, fsBlock, tid });
      return;
    }
    if (this.opts.fsBlockCount !== undefined && fsBlock >= this.opts.fsBlockCount) {
      throw badJournal(at, `logs fs block ${fsBlock}, beyond the filesystem end (${this.opts.fsBlockCount})`);
    }
    const copy = data.slice(0, g.bs);
    if (tag.flags & TAG_FLAG.ESCAPE) setBe32(copy, 0, JBD2_MAGIC);
    this.blocks.set(fsBlock, copy);
  }
}

/** Fast commits are not replayed; say so when the area holds records for the next transaction. */
function noteFastCommits(log: JournalLog, g: Geometry, endTid: number, warnings: string[]): boolean {
  const fcFirst = g.last + 1; // the kernel and e2fsck leave block `last` unused
  if (fcFirst >= g.maxLen) return false;
  const b = readLogBlock(log, fcFirst, g.maxLen);
  const tag = b[0] | (b[1] << 8);
  const tid = (b[8] | (b[9] << 8) | (b[10] << 16) | (b[11] << 24)) >>> 0;
  const EXT4_FC_TAG_HEAD = 9;
  if (tag === EXT4_FC_TAG_HEAD && tid === endTid) {
    warnings.push(`journal fast-commit area (block ${fcFirst}) holds records for transaction ${tid}; fast commits are not replayed, so changes fsync'ed after the last full commit are lost`);
    return true;
  }
  return false;
}

/**
 * EFSCORRUPTED naming the journal-logical block. Built directly rather than
 * with corrupted(), whose "(block N)" suffix would read as a filesystem block.
 */
function badJournal(j: number, what: string): Ext4Error {
  return new Ext4Error("EFSCORRUPTED", `journal block ${j}: ${what}`, { block: j });
}

/** EFSBADCRC (the kernel's EBADMSG for a bad checksum) naming the journal block. */
function badCrc(j: number, what: string): Ext4Error {
  return new Ext4Error("EFSBADCRC", `journal block ${j}: ${what}`, { block: j });
}

function readLogBlock(log: JournalLog, j: number, limit: number): Uint8Array {
  if (!Number.isInteger(log.blockSize) || log.blockSize < JOURNAL_SUPERBLOCK_SIZE || log.blockSize > 65536 ||
      (log.blockSize & (log.blockSize - 1)) !== 0) {
    throw new Ext4Error("EINVAL", `bad journal block size ${log.blockSize}`);
  }
  if (!Number.isSafeInteger(log.length) || log.length < 1) throw new Ext4Error("EINVAL", `bad journal length ${log.length}`);
  if (!Number.isSafeInteger(j) || j < 0 || j >= limit || j >= log.length) {
    throw badJournal(j, `outside the journal (${Math.min(limit, log.length)} blocks)`);
  }
  const b = log.readBlock(j);
  if (!(b instanceof Uint8Array) || b.length < log.blockSize) {
    throw new Ext4Error("EIO", `short read of journal block ${j}`, { block: j });
  }
  return b;
}
