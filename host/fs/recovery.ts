// Journal recovery at mount: replay what the journal committed but did not
// checkpoint. A read-write mount writes the replayed blocks home and marks the
// journal clean; a read-only mount serves them from an in-memory overlay and
// never writes a byte. Where the kernel's journal load fails, the mount fails
// with its error: a read-write mount first writes what the kernel writes
// (the replay, never the clean journal superblock), a read-only one nothing.

import { corrupted, Ext4Error } from "../errors.js";
import { setU32 } from "../format/bytes.js";
import { INCOMPAT } from "../format/features.js";
import { encodeSuperblockCounts, SB_CHECKSUM_OFFSET, SUPERBLOCK_OFFSET } from "../format/superblock.js";
import { JournalLog, planRecovery, type RecoveryPlan } from "../journal/recovery.js";
import { MapKind } from "./mapping.js";
import type { Ext4 } from "./super.js";
import { readSuperblock } from "./superblock-io.js";

export interface RecoveryReport {
  /** The journal needed recovery when mounted. */
  needed: boolean;
  /** What happened: replayed to disk, replayed into the overlay, or skipped (noload). */
  mode: "disk" | "overlay" | "skipped" | "none";
  transactions: number;
  blocks: number;
  warnings: string[];
}

export function journalLog(fs: Ext4): JournalLog {
  const ino = fs.sb.journalInum;
  if (ino === 0) throw new Ext4Error("EOPNOTSUPP", "external journal devices are not supported");
  const jinode = fs.inode(ino);
  const bs = fs.sb.blockSize;
  const length = Math.floor(jinode.size / bs);
  if (length < 4) throw corrupted(`journal inode is too small (${jinode.size} bytes)`, { ino });
  return {
    blockSize: bs,
    length,
    readBlock(j: number): Uint8Array {
      if (!Number.isInteger(j) || j < 0 || j >= length) throw corrupted(`journal block ${j} outside the journal`, { ino });
      const m = fs.mapBlocks(jinode, j, 1);
      if (m.kind !== MapKind.Mapped) throw corrupted(`journal block ${j} is not mapped`, { ino });
      return fs.bcache.readCopy(m.pblk, "journal block");
    },
  };
}

export function journalBlockToDevice(fs: Ext4, j: number): number {
  const m = fs.mapBlocks(fs.inode(fs.sb.journalInum), j, 1);
  if (m.kind !== MapKind.Mapped) throw corrupted(`journal block ${j} is not mapped`, { ino: fs.sb.journalInum });
  return m.pblk;
}

export function recoverOnMount(fs: Ext4): RecoveryReport {
  const sb = fs.sb;
  const none: RecoveryReport = { needed: false, mode: "none", transactions: 0, blocks: 0, warnings: [] };
  if (!fs.hasJournal || !(sb.featureIncompat & INCOMPAT.RECOVER)) return none;
  if (fs.config.options.noRecovery) return { ...none, needed: true, mode: "skipped" };
  let plan: RecoveryPlan;
  try {
    plan = planRecovery(journalLog(fs), { ignoreChecksums: !fs.verifyChecksums, fsBlockCount: sb.blocksCount });
  } catch (e) {
    // Where the kernel's load fails before replaying anything (and where we refuse a log).
    if (e instanceof Ext4Error) throw loadFailed(e, "nothing was written");
    throw e;
  }
  const report: RecoveryReport = {
    needed: plan.needed, mode: "none", transactions: plan.transactions, blocks: plan.blocks.size, warnings: [...plan.warnings],
  };
  if (fs.readOnly) {
    // The kernel writes its replay home even on a ro mount; ours never writes, and
    // a load the kernel fails fails here too.
    if (plan.loadError) throw loadFailed(plan.loadError, "nothing was written (read-only mount)");
    if (plan.needed) {
      fs.overlay(plan.blocks);
      report.mode = "overlay";
    }
    return report;
  }
  if (plan.fastCommitsPending) {
    // Replaying the full commits and then writing would lose what the kernel fsync'ed through fast commits.
    throw new Ext4Error("EOPNOTSUPP", "the journal holds fast commits after its last full commit, which this engine does not replay yet: " +
      "mount the image once with the kernel or run e2fsck on it (either replays them), or mount read-only (the state before them); nothing was written");
  }
  const bs = fs.sb.blockSize;
  const jsbBlock = journalBlockToDevice(fs, 0);
  const before = sb.raw.slice();
  for (const [pblk, data] of plan.blocks) {
    if (pblk >= fs.sb.blocksCount) throw corrupted(`journal replays block ${pblk} beyond the filesystem`, { block: pblk });
    fs.device.write(pblk * bs, data);
  }
  fs.device.flush();
  if (plan.loadError) {
    // As jbd2_journal_recover, then jbd2_journal_load: the replay is on disk, the
    // journal superblock and needs_recovery stay, so the next mount (or e2fsck)
    // recovers again. ext4_load_journal still puts back the error info.
    const now = readSuperblock(fs.device).raw;
    if (restoreErrorInfo(now, before)) writeSuperblock(fs, now);
    throw loadFailed(plan.loadError, "the replayed blocks were written home and the journal still needs recovery");
  }
  fs.device.write(jsbBlock * bs, plan.cleanSuperblock);
  fs.device.flush();
  // Reload from the replayed image, then write the superblock as the kernel
  // leaves it after recovery: RECOVER cleared and the free counts summed from
  // the group descriptors (jbd2 does not journal the superblock's counters).
  fs.replaceDevice(fs.device);
  const now = readSuperblock(fs.device);
  let freeClusters = 0;
  let freeInodes = 0;
  for (const g of fs.groups) {
    freeClusters += g.freeBlocks;
    freeInodes += g.freeInodes;
  }
  now.freeBlocksCount = freeClusters * (now.clusterSize / now.blockSize);
  now.freeInodesCount = freeInodes;
  now.featureIncompat &= ~INCOMPAT.RECOVER;
  const raw = encodeSuperblockCounts(now);
  restoreErrorInfo(raw, before);
  writeSuperblock(fs, raw);
  fs.replaceDevice(fs.device);
  report.mode = plan.needed ? "disk" : "none";
  return report;
}

// s_error_count .. s_mount_opts (EXT4_S_ERR_START/END) and s_state's ERROR_FS bit.
const S_ERR_START = 0x194;
const S_ERR_END = 0x200;
const S_STATE = 0x3a;
const EXT4_ERROR_FS = 0x2;

/**
 * ext4_load_journal keeps the error info the replay may have rolled back (a
 * journaled superblock copy older than the last recorded error). Changes `raw`
 * in place; true if anything changed.
 */
function restoreErrorInfo(raw: Uint8Array, before: Uint8Array): boolean {
  let changed = false;
  for (let i = S_ERR_START; i < S_ERR_END; i++) {
    if (raw[i] !== before[i]) { raw[i] = before[i]; changed = true; }
  }
  if ((before[S_STATE] & EXT4_ERROR_FS) && !(raw[S_STATE] & EXT4_ERROR_FS)) {
    raw[S_STATE] |= EXT4_ERROR_FS;
    changed = true;
  }
  return changed;
}

function writeSuperblock(fs: Ext4, raw: Uint8Array): void {
  if (fs.metadataCsum) setU32(raw, SB_CHECKSUM_OFFSET, fs.csum.superblock(raw));
  fs.device.write(SUPERBLOCK_OFFSET, raw);
  fs.device.flush();
}

/** The plan's load error, with what this mount did and the way to look anyway. */
function loadFailed(e: Ext4Error, done: string): Ext4Error {
  const detail = e.message.replace(/^[A-Z]+: /, "");
  return new Ext4Error(e.code, `journal recovery failed: ${detail}; ${done}. Mount with noload,ro to read the unrecovered image`, { block: e.block, cause: e });
}
