// The orphan records (fs/ext4/orphan.c): an inode being truncated, or
// unlinked while still in use, is recorded so that a crash part-way leaves
// the next mount a list of work to finish (orphan-cleanup.ts).
//
// Two kinds, as the kernel keeps them:
// - the orphan file (COMPAT_ORPHAN_FILE): blocks of the orphan inode holding
//   le32 inode numbers, an 8-byte tail with the magic and a checksum; a free
//   slot is found through in-core per-block free counts. The kernel adds
//   there first and falls back to the list when the file is full.
// - the legacy list: s_last_orphan names the newest orphan, each orphan's
//   i_dtime the next one (NEXT_ORPHAN). The in-core list keeps the same order
//   (newest first), so removing an inode edits its predecessor: the
//   superblock for the head, else the previous inode.
//
// The superblock goes through the journal as the kernel's s_sbh does
// (get_write_access + dirty_metadata on the block holding it, checksum set):
// s_last_orphan must be committed with the inode changes it points at, so a
// crash replays both or neither. commitSuper still writes the same buffer's
// bytes directly at sync and unmount, after the commit, as
// ext4_commit_super does.
//
// Without a journal the kernel keeps no orphan records (ext4_orphan_add
// returns at once: no transaction could make them crash-safe), but edits the
// list while it cleans up at mount (EXT4_ORPHAN_FS): the same here.
//
// RO_COMPAT_ORPHAN_PRESENT is the mount's (mount-rw.ts setupSuper sets it on
// every journaled read-write mount of an orphan_file filesystem, cleanSuper
// clears it at a clean unmount), as ext4_setup_super / ext4_put_super do.

import { corrupted } from "../errors.js";
import { setU32, u32 } from "../format/bytes.js";
import { COMPAT } from "../format/features.js";
import { encodeSuperblockCounts, SB_CHECKSUM_OFFSET, SUPERBLOCK_OFFSET } from "../format/superblock.js";
import type { Handle } from "../journal/handle.js";
import { type Ext4Inode, STATE } from "./inode.js";
import { markInodeDirty } from "./inode-write.js";
import { MapKind } from "./mapping.js";
import type { Ext4 } from "./super.js";

export const ORPHAN_BLOCK_MAGIC = 0x0b10ca04;
/** struct ext4_orphan_block_tail: ob_magic, ob_checksum. */
const TAIL_BYTES = 8;

/** Blocks orphanAdd may dirty: the superblock and the inode (legacy list), or one orphan block. */
export const ORPHAN_ADD_CREDITS = 2;
/** Blocks orphanDel may dirty: the superblock or the previous orphan, and the inode. */
export const ORPHAN_DEL_CREDITS = 2;

interface OrphanBlock {
  pblk: number;
  /** ob_free_entries. */
  free: number;
}

/** struct ext4_orphan_info plus the in-core legacy list (sbi->s_orphan). */
interface OrphanInfo {
  blocks: OrphanBlock[];
  perBlock: number;
  /** of_csum_seed: the orphan inode's checksum seed. */
  seed: number;
  /** The legacy list in memory, head (s_last_orphan) first. */
  list: Ext4Inode[];
  /** EXT4_ORPHAN_FS: the mount's cleanup is running (the list is edited even without a journal). */
  cleaning: boolean;
}

const infos = new WeakMap<Ext4, OrphanInfo>();

/** ext4_inodes_per_orphan_block. */
export function inodesPerOrphanBlock(blockSize: number): number {
  return (blockSize - TAIL_BYTES) / 4;
}

/** ext4_orphan_file_block_csum: crc32c(orphan inode seed, le64 physical block, the entries). */
export function orphanBlockCsum(fs: Ext4, seed: number, pblk: number, data: Uint8Array): number {
  const blk = new Uint8Array(8);
  setU32(blk, 0, pblk >>> 0);
  setU32(blk, 4, Math.floor(pblk / 0x100000000));
  const c = fs.csum.crc(seed, blk);
  return fs.csum.crc(c, data.subarray(0, data.length - TAIL_BYTES)) >>> 0;
}

/**
 * ext4_init_orphan_info: the orphan file's blocks read and checked (magic,
 * checksum; a hole or a bad block fails, as it fails the kernel's mount) and
 * their free slots counted. Called by the read-write mount before cleanup;
 * later calls return what it found.
 */
export function initOrphanInfo(fs: Ext4): OrphanInfo {
  let info = infos.get(fs);
  if (info) return info;
  const bs = fs.sb.blockSize;
  info = { blocks: [], perBlock: inodesPerOrphanBlock(bs), seed: 0, list: [], cleaning: false };
  if (fs.sb.featureCompat & COMPAT.ORPHAN_FILE) {
    const ino = fs.sb.orphanFileInum;
    if (ino === 0 || ino > fs.sb.inodesCount) throw corrupted(`orphan file inode ${ino} is out of range`, { ino });
    const inode = fs.inode(ino);
    info.seed = fs.inodeSeed(inode);
    const n = Math.floor(inode.size / bs);
    for (let i = 0; i < n; ) {
      const m = fs.mapBlocks(inode, i, n - i);
      if (m.kind !== MapKind.Mapped) throw corrupted(`orphan file block ${i} is not mapped`, { ino });
      for (let k = 0; k < m.len && i < n; k++, i++) {
        const pblk = m.pblk + k;
        const data = fs.bcache.read(pblk, "orphan file block");
        if (u32(data, bs - TAIL_BYTES) !== ORPHAN_BLOCK_MAGIC) throw corrupted(`orphan file block ${i}: bad magic`, { ino, block: pblk });
        if (fs.metadataCsum && fs.verifyChecksums && u32(data, bs - 4) !== orphanBlockCsum(fs, info.seed, pblk, data)) {
          throw corrupted(`orphan file block ${i}: bad checksum`, { ino, block: pblk });
        }
        let free = 0;
        for (let j = 0; j < info.perBlock; j++) if (u32(data, j * 4) === 0) free++;
        info.blocks.push({ pblk, free });
      }
    }
  }
  infos.set(fs, info);
  return info;
}

/** The orphan state of a mount, for cleanup and tests: the orphan file's free slots and the in-core list. */
export function orphanState(fs: Ext4): { fileBlocks: number; fileFree: number; list: number[] } {
  const info = initOrphanInfo(fs);
  return { fileBlocks: info.blocks.length, fileFree: info.blocks.reduce((a, b) => a + b.free, 0), list: info.list.map((i) => i.ino) };
}

/** Is the inode recorded (orphan file or in-core list)? */
export function isOrphan(fs: Ext4, inode: Ext4Inode): boolean {
  return inode.testState(STATE.ORPHAN_FILE) || (infos.get(fs)?.list.includes(inode) ?? false);
}

/** Marks the start and end of the mount's cleanup (EXT4_ORPHAN_FS in s_mount_state). */
export function setOrphanCleaning(fs: Ext4, on: boolean): void {
  initOrphanInfo(fs).cleaning = on;
}

/** The in-core list learns of an inode found on the on-disk list at mount (cleanup's list_add). */
export function orphanListAddInCore(fs: Ext4, inode: Ext4Inode): void {
  const info = initOrphanInfo(fs);
  if (!info.list.includes(inode)) info.list.unshift(inode);
}

/**
 * ext4_orphan_add: records `inode` (being truncated, or unlinked while in
 * use) in `handle`'s transaction. A no-op without a journal, and for an
 * inode already recorded. Dirties up to ORPHAN_ADD_CREDITS blocks.
 */
export function orphanAdd(handle: Handle, fs: Ext4, inode: Ext4Inode): void {
  if (!fs.journal || !handle.journaled) return;
  const info = initOrphanInfo(fs);
  if (inode.testState(STATE.ORPHAN_FILE) || info.list.includes(inode)) return;
  if (info.blocks.length > 0 && orphanFileAdd(handle, fs, info, inode)) return;
  // The orphan file is full (or absent): the list, at its head.
  const sb = fs.sb;
  const sbh = superBuffer(fs);
  try {
    handle.getWriteAccess(sbh);
    // After earlier errors the inode may already be on the on-disk list: then only the in-core list learns of it.
    const onDisk = inode.dtime !== 0 && inode.dtime <= sb.inodesCount;
    info.list.unshift(inode);
    if (!onDisk) {
      inode.dtime = sb.lastOrphan;
      sb.lastOrphan = inode.ino;
      writeSuperInto(fs, sbh.data);
      handle.dirtyMetadata(sbh);
      markInodeDirty(handle, fs, inode);
    }
  } catch (e) {
    // Stray in-core entries must not outlive a failed on-disk change.
    const k = info.list.indexOf(inode);
    if (k >= 0) info.list.splice(k, 1);
    throw e;
  } finally {
    fs.bcache.brelse(sbh);
  }
}

/** ext4_orphan_file_add: the first block with a free slot, its first zero entry. False when the file is full. */
function orphanFileAdd(handle: Handle, fs: Ext4, info: OrphanInfo, inode: Ext4Inode): boolean {
  // The kernel starts its search at a block hashed from the CPU number; one CPU here: block 0.
  const i = info.blocks.findIndex((b) => b.free > 0);
  if (i < 0) return false;
  const ob = info.blocks[i];
  const bh = fs.bcache.bread(ob.pblk, "orphan file block");
  try {
    handle.getWriteAccess(bh);
    const d = bh.data;
    let j = 0;
    while (j < info.perBlock && u32(d, j * 4) !== 0) j++;
    if (j === info.perBlock) throw corrupted(`orphan file block ${i} has no free entry though ${ob.free} were counted`, { ino: fs.sb.orphanFileInum, block: ob.pblk });
    setU32(d, j * 4, inode.ino);
    setOrphanBlockCsum(fs, info, ob.pblk, d);
    handle.dirtyMetadata(bh);
    ob.free--;
    inode.orphanIdx = i * info.perBlock + j;
    inode.setState(STATE.ORPHAN_FILE);
  } finally {
    fs.bcache.brelse(bh);
  }
  return true;
}

/**
 * ext4_orphan_del: drops the record of `inode`. Without a handle (an error
 * path) only the in-core record goes. A no-op for an inode not recorded, and
 * without a journal except during the mount's cleanup. Dirties up to
 * ORPHAN_DEL_CREDITS blocks.
 */
export function orphanDel(handle: Handle | undefined, fs: Ext4, inode: Ext4Inode): void {
  const info = infos.get(fs);
  if (!info) return;
  if (!fs.journal && !info.cleaning) return;
  if (inode.testState(STATE.ORPHAN_FILE)) {
    orphanFileDel(handle, fs, info, inode);
    return;
  }
  const k = info.list.indexOf(inode);
  if (k < 0) return;
  info.list.splice(k, 1);
  if (!handle) return;
  const next = inode.dtime;
  if (k === 0) {
    const sbh = superBuffer(fs);
    try {
      handle.getWriteAccess(sbh);
      fs.sb.lastOrphan = next;
      writeSuperInto(fs, sbh.data);
      handle.dirtyMetadata(sbh);
    } finally {
      fs.bcache.brelse(sbh);
    }
  } else {
    const prev = info.list[k - 1];
    prev.dtime = next;
    markInodeDirty(handle, fs, prev);
  }
  inode.dtime = 0;
  markInodeDirty(handle, fs, inode);
}

/** ext4_orphan_file_del: the slot zeroed and counted free again (with a handle); the state bit goes either way. */
function orphanFileDel(handle: Handle | undefined, fs: Ext4, info: OrphanInfo, inode: Ext4Inode): void {
  const blk = Math.floor(inode.orphanIdx / info.perBlock);
  const off = inode.orphanIdx % info.perBlock;
  try {
    if (!handle || inode.orphanIdx < 0 || blk >= info.blocks.length) return;
    const ob = info.blocks[blk];
    const bh = fs.bcache.bread(ob.pblk, "orphan file block");
    try {
      handle.getWriteAccess(bh);
      setU32(bh.data, off * 4, 0);
      setOrphanBlockCsum(fs, info, ob.pblk, bh.data);
      handle.dirtyMetadata(bh);
      ob.free++;
    } finally {
      fs.bcache.brelse(bh);
    }
  } finally {
    inode.clearState(STATE.ORPHAN_FILE);
    inode.orphanIdx = -1;
  }
}

/**
 * The checksum set when the block is changed (the kernel sets it in a jbd2
 * commit trigger, over the frozen copy; our commit logs the buffer as it is
 * when its transaction commits, and every change sets it first).
 */
function setOrphanBlockCsum(fs: Ext4, info: OrphanInfo, pblk: number, d: Uint8Array): void {
  if (!fs.metadataCsum) return;
  setU32(d, d.length - 4, orphanBlockCsum(fs, info.seed, pblk, d));
}

/** sbi->s_sbh: the block holding the primary superblock, referenced. */
function superBuffer(fs: Ext4) {
  return fs.bcache.bread(Math.floor(SUPERBLOCK_OFFSET / fs.sb.blockSize), "superblock");
}

/** The in-memory superblock, checksum set (ext4_superblock_csum_set), into its buffer. */
function writeSuperInto(fs: Ext4, block: Uint8Array): void {
  const raw = encodeSuperblockCounts(fs.sb);
  if (fs.metadataCsum) setU32(raw, SB_CHECKSUM_OFFSET, fs.csum.superblock(raw));
  block.set(raw, SUPERBLOCK_OFFSET % fs.sb.blockSize);
}
