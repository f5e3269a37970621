// Journal recovery at mount: replay what the journal committed but did not
// checkpoint. A read-write mount writes the replayed blocks home and marks the
// journal clean; a read-only mount serves them from an in-memory overlay and
// never writes a byte.

import { corrupted, Ext4Error } from "../errors.js";
import { setU32 } from "../format/bytes.js";
import { INCOMPAT } from "../format/features.js";
import { encodeSuperblockCounts, SB_CHECKSUM_OFFSET, SUPERBLOCK_OFFSET } from "../format/superblock.js";
import { JournalLog, planRecovery } from "../journal/recovery.js";
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
  const plan = planRecovery(journalLog(fs), { ignoreChecksums: !fs.verifyChecksums, fsBlockCount: sb.blocksCount });
  const report: RecoveryReport = {
    needed: plan.needed, mode: "none", transactions: plan.transactions, blocks: plan.blocks.size, warnings: [...plan.warnings],
  };
  if (plan.failedCommit !== undefined) {
    // As the kernel: replay what precedes the damaged commit and say so.
    report.warnings.push(`journal transaction ${plan.failedCommit} is corrupt; replay stopped before it`);
  }
  if (fs.readOnly) {
    if (plan.needed) {
      fs.overlay(plan.blocks);
      report.mode = "overlay";
    }
    return report;
  }
  const bs = fs.sb.blockSize;
  const jsbBlock = journalBlockToDevice(fs, 0);
  for (const [pblk, data] of plan.blocks) {
    if (pblk >= fs.sb.blocksCount) throw corrupted(`journal replays block ${pblk} beyond the filesystem`, { block: pblk });
    fs.device.write(pblk * bs, data);
  }
  fs.device.flush();
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
  if (fs.metadataCsum) setU32(raw, SB_CHECKSUM_OFFSET, fs.csum.superblock(raw));
  fs.device.write(SUPERBLOCK_OFFSET, raw);
  fs.device.flush();
  fs.replaceDevice(fs.device);
  report.mode = plan.needed ? "disk" : "none";
  return report;
}
