// Writing an inode back to its table block through a journal handle
// (ext4_mark_inode_dirty -> ext4_do_update_inode), checksum included.

import { setU16, u32 } from "../format/bytes.js";
import { encodeInode, GOOD_OLD_INODE_SIZE, type Inode, INODE_CSUM_HI, INODE_CSUM_LO } from "../format/inode.js";
import { INCOMPAT, RO_COMPAT } from "../format/features.js";
import { hasRoCompat } from "../format/superblock.js";
import type { Handle } from "../journal/handle.js";
import { Ext4Inode, STATE } from "./inode.js";
import { inodeLocation } from "./inode-table.js";
import type { Ext4 } from "./super.js";

/** Encodes `inode` into its raw bytes, sets the checksum, and dirties its inode-table block in `handle`. */
export function markInodeDirty(handle: Handle, fs: Ext4, inode: Inode): void {
  const sb = fs.sb;
  const incore = inode instanceof Ext4Inode ? inode : undefined;
  if (incore) fs.icache.assertCurrent(incore);
  if (incore?.testState(STATE.NEW)) {
    // EXT4_STATE_NEW: nothing of what the table held before survives, in-inode xattr area included.
    const iblock = inode.iBlock.slice();
    inode.raw.fill(0);
    inode.iBlock.set(iblock);
  }
  const rawSize = u32(inode.raw, 0x4) + u32(inode.raw, 0x6c) * 0x100000000;
  encodeInode(inode, inode.raw, {
    inodeSize: sb.inodeSize, blockSize: sb.blockSize, hugeFile: hasRoCompat(sb, RO_COMPAT.HUGE_FILE),
    largeDir: (sb.featureIncompat & INCOMPAT.LARGEDIR) !== 0,
  });
  setInodeChecksum(fs, inode.ino, inode.raw);
  const loc = inodeLocation(fs, inode.ino);
  const bh = fs.bcache.bread(loc.block, "inode table block");
  try {
    handle.getWriteAccess(bh);
    bh.data.set(inode.raw.subarray(0, sb.inodeSize), loc.offset);
    handle.dirtyMetadata(bh);
  } finally {
    fs.bcache.brelse(bh);
  }
  if (incore) {
    incore.clearState(STATE.NEW);
    // ext4_update_inode_fsync_trans: fsync waits for this transaction; fdatasync only if i_disksize moved.
    if (handle.journaled) {
      incore.syncTid = handle.tid;
      if (incore.disksize !== rawSize) incore.datasyncTid = handle.tid;
    }
    incore.dirty = false;
    fs.inodeSettled(incore);
  }
}

/** ext4_inode_csum_set: the low 16 bits always, the high 16 where i_extra_isize covers them. */
export function setInodeChecksum(fs: Ext4, ino: number, raw: Uint8Array): void {
  if (!fs.metadataCsum) return;
  const size = fs.sb.inodeSize;
  const c = fs.csum.inode(ino, raw, size);
  setU16(raw, INODE_CSUM_LO, c & 0xffff);
  if (size > GOOD_OLD_INODE_SIZE && raw[0x80] + (raw[0x81] << 8) + GOOD_OLD_INODE_SIZE >= INODE_CSUM_HI + 2) setU16(raw, INODE_CSUM_HI, c >>> 16);
}
