// ext4_orphan_cleanup: a read-write mount, after journal replay, finishes
// what the orphan records say was left half-done: an inode with links had a
// truncate in progress (its blocks past i_size are freed), an inode without
// them was unlinked while open (it is evicted: blocks, xattr block and the
// inode itself freed). The legacy list first, from s_last_orphan along
// i_dtime, one inode at a time, each dropped from the list in the handles
// that finish it, so a crash during cleanup leaves a list the next mount
// walks again; then every slot of the orphan file.
//
// It lives apart from orphan.ts because it calls truncate and evict, which
// call orphan.ts.
//
// Read-only mounts skip it. The kernel runs it on a read-only mount too
// (lifting SB_RDONLY while it runs) unless the device itself is read-only;
// ours never writes a byte when mounted read-only. Nothing a reader sees
// differs: an orphan without links has no name, and blocks past i_size are
// never read. Only statfs's free counts show the difference.

import { Ext4Error } from "../errors.js";
import { u16, u32 } from "../format/bytes.js";
import { INODE_FLAGS, isDir, isLnk, isReg } from "../format/inode.js";
import { truncateBlocks } from "./evict.js";
import { readInodeBitmap } from "./ialloc.js";
import { type Ext4Inode, STATE } from "./inode.js";
import { isFastSymlink } from "./inode-table.js";
import { initOrphanInfo, isOrphan, ORPHAN_DEL_CREDITS, orphanDel, orphanListAddInCore, setOrphanCleaning } from "./orphan.js";
import type { Ext4 } from "./super.js";

const S_STATE = 0x3a;
const EXT4_ERROR_FS = 0x2;

export interface OrphanCleanupReport {
  /** Unlinked inodes freed ("N orphan inodes deleted"). */
  deleted: number;
  /** Linked inodes truncated to i_size ("N truncates cleaned up"). */
  truncated: number;
  /** Damage stopped the cleanup (see the mount's warnings). */
  failed: boolean;
}

/**
 * ext4_orphan_cleanup for a read-write mount whose journal (if any) is
 * replayed and loaded. Installs the final-iput eviction first: cleanup
 * frees unlinked orphans through iput, as the kernel's does.
 */
export function orphanCleanup(fs: Ext4): OrphanCleanupReport {
  const report: OrphanCleanupReport = { deleted: 0, truncated: 0, failed: false };
  const sb = fs.sb;
  const info = initOrphanInfo(fs);
  if (sb.lastOrphan === 0 && info.blocks.length === 0) return report;
  if (u16(sb.raw, S_STATE) & EXT4_ERROR_FS) {
    // Neither record can be trusted on a filesystem with errors: e2fsck's job.
    if (sb.lastOrphan !== 0) {
      fs.warnings.push("Errors on filesystem, clearing orphan list.");
      sb.lastOrphan = 0;
      fs.markSuperDirty();
    }
    return report;
  }
  setOrphanCleaning(fs, true);
  try {
    // Each inode leaves the list as it is processed; the bound only stops a damaged chain that loops.
    for (let n = 0; sb.lastOrphan !== 0; n++) {
      const inode = n < sb.inodesCount ? orphanGet(fs, sb.lastOrphan) : undefined;
      if (!inode || !processOrphan(fs, inode, report, () => orphanListAddInCore(fs, inode))) {
        sb.lastOrphan = 0;
        fs.markSuperDirty();
        break;
      }
    }
    if (!report.failed) {
      outer: for (let i = 0; i < info.blocks.length; i++) {
        const ob = info.blocks[i];
        for (let j = 0; j < info.perBlock; j++) {
          const ino = u32(fs.bcache.read(ob.pblk, "orphan file block"), j * 4);
          if (ino === 0) continue;
          const inode = orphanGet(fs, ino);
          if (!inode) continue;
          const ok = processOrphan(fs, inode, report, () => {
            inode.setState(STATE.ORPHAN_FILE);
            inode.orphanIdx = i * info.perBlock + j;
          });
          if (!ok) break outer;
        }
      }
    }
  } finally {
    setOrphanCleaning(fs, false);
  }
  const plural = (n: number) => (n === 1 ? "" : "s");
  if (report.deleted) fs.warnings.push(`${report.deleted} orphan inode${plural(report.deleted)} deleted`);
  if (report.truncated) fs.warnings.push(`${report.truncated} truncate${plural(report.truncated)} cleaned up`);
  return report;
}

/**
 * ext4_process_orphan: a truncate finished, or the inode freed by the iput
 * that drops the last reference. False when it failed: an Ext4Error (damage
 * found on the way) ends the cleanup, as the kernel's stops once ext4_error
 * has marked the filesystem, and is left in the warnings; the next e2fsck
 * finishes what is left.
 */
function processOrphan(fs: Ext4, inode: Ext4Inode, report: OrphanCleanupReport, record: () => void): boolean {
  try {
    record();
    try {
      if (inode.linksCount !== 0) {
        // truncate_inode_pages to i_size, then ext4_truncate, which drops the record of an inode that keeps links.
        truncateBlocks(fs, inode);
        // Whatever the truncate did, the record goes (a truncate with nothing to do must not leave the list looping).
        if (isOrphan(fs, inode)) dropRecord(fs, inode);
        report.truncated++;
      } else {
        report.deleted++;
      }
    } finally {
      // The delete happens here: the final iput of an inode without links evicts it.
      fs.iput(inode);
    }
    return true;
  } catch (e) {
    if (!(e instanceof Ext4Error)) throw e;
    fs.warnings.push(`orphan cleanup stopped at inode ${inode.ino}: ${e.message}`);
    report.failed = true;
    return false;
  }
}

/** orphanDel in a handle of its own. */
function dropRecord(fs: Ext4, inode: Ext4Inode): void {
  const h = fs.startHandle(ORPHAN_DEL_CREDITS);
  try {
    orphanDel(h, fs, inode);
  } finally {
    h.stop();
  }
}

/**
 * ext4_orphan_get: the orphan, referenced, if it is one: a valid number
 * whose bitmap bit is set, an inode iget accepts, truncatable if it has
 * links, its next-orphan link in range. Anything else ends the walk (the
 * kernel reports it with ext4_error: "bad orphan inode").
 */
function orphanGet(fs: Ext4, ino: number): Ext4Inode | undefined {
  const sb = fs.sb;
  if (ino < sb.firstIno || ino > sb.inodesCount) {
    fs.warnings.push(`bad orphan inode ${ino}: out of range`);
    return undefined;
  }
  const g = Math.floor((ino - 1) / sb.inodesPerGroup);
  const bit = (ino - 1) % sb.inodesPerGroup;
  const bh = readInodeBitmap(fs, g);
  if (!bh) {
    fs.warnings.push(`bad orphan inode ${ino}: inode bitmap of group ${g} is unreadable`);
    return undefined;
  }
  const set = (bh.data[bit >> 3] & (1 << (bit & 7))) !== 0;
  fs.bcache.brelse(bh);
  if (!set) {
    fs.warnings.push(`bad orphan inode ${ino}: not in use in the inode bitmap`);
    return undefined;
  }
  let inode: Ext4Inode;
  try {
    inode = fs.iget(ino);
  } catch (e) {
    fs.warnings.push(`couldn't read orphan inode ${ino}: ${(e as Error).message}`);
    return undefined;
  }
  if ((inode.linksCount !== 0 && !canTruncate(fs, inode)) || inode.dtime > sb.inodesCount) {
    fs.warnings.push(`bad orphan inode ${ino}: links ${inode.linksCount}, next orphan ${inode.dtime}`);
    // Blocks of a bad deleted inode are left alone (the kernel zeroes i_blocks in core before iput).
    if (inode.linksCount === 0) inode.blocks512 = 0;
    putWithoutEvict(fs, inode);
    return undefined;
  }
  return inode;
}

/** ext4_can_truncate: regular files, directories, and symlinks with blocks. */
function canTruncate(fs: Ext4, inode: Ext4Inode): boolean {
  if (isReg(inode) || isDir(inode)) return true;
  if (isLnk(inode)) return !isFastSymlink(fs, inode) || (inode.flags & INODE_FLAGS.INLINE_DATA) !== 0;
  return false;
}

/** Drops the reference of an inode that must not be evicted (a bad orphan). */
function putWithoutEvict(fs: Ext4, inode: Ext4Inode): void {
  const evict = fs.icache.evict;
  fs.icache.evict = undefined;
  try {
    fs.iput(inode);
  } finally {
    fs.icache.evict = evict;
  }
}

