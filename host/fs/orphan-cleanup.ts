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
import { readDevice, writeDevice } from "../cache/buffer-cache.js";
import { truncateInodePages } from "../cache/truncate.js";
import { readInodeBitmap } from "./ialloc.js";
import { type Ext4Inode, STATE } from "./inode.js";
import { isFastSymlink } from "./inode-table.js";
import { initOrphanInfo, isOrphan, ORPHAN_DEL_CREDITS, orphanDel, orphanListAddInCore, setOrphanCleaning } from "./orphan.js";
import { MapKind } from "./mapping.js";
import type { Ext4 } from "./super.js";
import { ext4GroupError } from "./ext4-error.js";
import { ext4Truncate } from "./truncate.js";

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
          // A bad slot is skipped, as the kernel's walk does, unless its error stopped writing.
          if (!inode) {
            if (fs.readOnly) break outer;
            continue;
          }
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
        truncateInodePages(fs, inode, inode.size);
        zeroTailOnDisk(fs, inode);
        ext4Truncate(fs, inode);
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

/**
 * ext4_truncate's ext4_block_truncate_page for the interrupted truncate: the
 * bytes of the last block past i_size become zeros, so a later extension
 * reads zeros there, as after the kernel's cleanup. Setattr does this through
 * the page cache; at mount nothing of the file is cached (its folios were
 * just truncated), so the block is rewritten directly. Zeros past EOF are
 * safe in any crash order. Encrypted contents are left alone (zeroing
 * ciphertext would not zero the plaintext).
 */
function zeroTailOnDisk(fs: Ext4, inode: Ext4Inode): void {
  const bs = fs.sb.blockSize;
  const off = inode.size % bs;
  if (off === 0 || inode.flags & (INODE_FLAGS.INLINE_DATA | INODE_FLAGS.ENCRYPT)) return;
  const m = fs.mapBlocks(inode, Math.floor(inode.size / bs), 1);
  if (m.kind !== MapKind.Mapped) return;
  const buf = new Uint8Array(bs);
  readDevice(fs.device, m.pblk * bs, buf);
  if (buf.subarray(off).every((b) => b === 0)) return;
  buf.fill(0, off);
  writeDevice(fs.device, m.pblk * bs, buf);
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
    return badOrphan(fs, ino, "out of range");
  }
  const g = Math.floor((ino - 1) / sb.inodesPerGroup);
  const bit = (ino - 1) % sb.inodesPerGroup;
  const bh = readInodeBitmap(fs, g);
  if (!bh) {
    return badOrphan(fs, ino, `inode bitmap of group ${g} is unreadable`);
  }
  const set = (bh.data[bit >> 3] & (1 << (bit & 7))) !== 0;
  fs.bcache.brelse(bh);
  if (!set) {
    return badOrphan(fs, ino, "not in use in the inode bitmap");
  }
  let inode: Ext4Inode;
  try {
    inode = fs.iget(ino);
  } catch (e) {
    if (!(e instanceof Ext4Error)) throw e;
    return badOrphan(fs, ino, e.message, `couldn't read orphan inode ${ino}`, e);
  }
  if ((inode.linksCount !== 0 && !canTruncate(fs, inode)) || inode.dtime > sb.inodesCount) {
    // Blocks of a bad deleted inode are left alone (the kernel zeroes i_blocks in core before iput).
    if (inode.linksCount === 0) inode.blocks512 = 0;
    putWithoutEvict(fs, inode);
    return badOrphan(fs, ino, `links ${inode.linksCount}, next orphan ${inode.dtime}`);
  }
  return inode;
}

/**
 * ext4_orphan_get's bad_orphan: an ext4_error ("bad orphan inode N"): the
 * superblock records it and errors= acts (remount-ro by default: the cleanup
 * stops and the volume turns read-only, leaving the list to e2fsck). Only a
 * panic is thrown; the caller ends the walk either way.
 */
function badOrphan(fs: Ext4, ino: number, why: string, what = `bad orphan inode ${ino}`, cause?: Ext4Error): undefined {
  const err = new Ext4Error(cause?.code ?? "EFSCORRUPTED", `${what}: ${why}`, { ino, cause });
  try {
    ext4GroupError(fs, err, "ext4_orphan_get");
  } catch (e) {
    if (e !== err) throw e;
  }
  return undefined;
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

