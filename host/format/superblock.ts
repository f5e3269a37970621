// The ext4 superblock (1024 bytes at byte offset 1024): decode and encode.

import { corrupted, Ext4Error } from "../errors.js";
import { cString, hiLo, setU32, u16, u32, u8, uuidString } from "./bytes.js";
import { COMPAT, INCOMPAT, RO_COMPAT } from "./features.js";

export const SUPERBLOCK_OFFSET = 1024;
export const SUPERBLOCK_SIZE = 1024;
export const EXT4_MAGIC = 0xef53;
export const SB_CHECKSUM_OFFSET = 0x3fc;

export interface Superblock {
  inodesCount: number;
  blocksCount: number;
  reservedBlocksCount: number;
  freeBlocksCount: number;
  freeInodesCount: number;
  firstDataBlock: number;
  logBlockSize: number;
  logClusterSize: number;
  blockSize: number;
  clusterSize: number;
  blocksPerGroup: number;
  clustersPerGroup: number;
  inodesPerGroup: number;
  mtime: number;
  wtime: number;
  mountCount: number;
  maxMountCount: number;
  state: number;
  errors: number;
  minorRevLevel: number;
  lastCheck: number;
  checkInterval: number;
  creatorOs: number;
  revLevel: number;
  defResuid: number;
  defResgid: number;
  firstIno: number;
  inodeSize: number;
  blockGroupNr: number;
  featureCompat: number;
  featureIncompat: number;
  featureRoCompat: number;
  uuid: Uint8Array;
  uuidText: string;
  volumeName: string;
  lastMounted: string;
  reservedGdtBlocks: number;
  journalUuid: Uint8Array;
  journalInum: number;
  journalDev: number;
  lastOrphan: number;
  hashSeed: Uint32Array;
  defHashVersion: number;
  jnlBackupType: number;
  descSize: number;
  defaultMountOpts: number;
  firstMetaBg: number;
  mkfsTime: number;
  jnlBlocks: Uint32Array;
  minExtraIsize: number;
  wantExtraIsize: number;
  flags: number;
  mmpInterval: number;
  mmpBlock: number;
  logGroupsPerFlex: number;
  checksumType: number;
  kbytesWritten: number;
  errorCount: number;
  mountOpts: string;
  lpfIno: number;
  /** sparse_super2: the (at most two) groups that carry backups. */
  backupBgs: [number, number];
  checksumSeed: number;
  encoding: number;
  encodingFlags: number;
  orphanFileInum: number;
  /** Quota inodes (user, group, project); 0 when absent. */
  quotaInums: [number, number, number];
  checksum: number;
  /** The raw 1024 bytes, for re-encoding with updated fields. */
  raw: Uint8Array;
}

export const SB_FLAGS = { SIGNED_HASH: 0x1, UNSIGNED_HASH: 0x2, TEST_FS: 0x4 } as const;

export function hasCompat(sb: Superblock, bit: number): boolean { return (sb.featureCompat & bit) !== 0; }
export function hasIncompat(sb: Superblock, bit: number): boolean { return (sb.featureIncompat & bit) !== 0; }
export function hasRoCompat(sb: Superblock, bit: number): boolean { return (sb.featureRoCompat & bit) !== 0; }
export const is64bit = (sb: Superblock) => hasIncompat(sb, INCOMPAT.BIT64);
export const hasJournal = (sb: Superblock) => hasCompat(sb, COMPAT.HAS_JOURNAL);

/** Decodes and sanity-checks the superblock. Checksum verification is the caller's (needs crc32c). */
export function decodeSuperblock(b: Uint8Array): Superblock {
  if (b.length < SUPERBLOCK_SIZE) throw corrupted("superblock truncated");
  if (u16(b, 0x38) !== EXT4_MAGIC) {
    throw new Ext4Error("EINVAL", "not an ext2/3/4 filesystem (bad superblock magic)");
  }
  const raw = b.slice(0, SUPERBLOCK_SIZE);
  const incompat = u32(b, 0x60);
  const bit64 = (incompat & INCOMPAT.BIT64) !== 0;
  const logBlockSize = u32(b, 0x18);
  const logClusterSize = u32(b, 0x1c);
  if (logBlockSize > 6) throw corrupted(`invalid block size 2^(10+${logBlockSize})`, { block: 0 });
  const blockSize = 1024 << logBlockSize;
  const bigalloc = (u32(b, 0x64) & RO_COMPAT.BIGALLOC) !== 0;
  if (bigalloc && (logClusterSize < logBlockSize || logClusterSize > logBlockSize + 16)) {
    throw corrupted(`invalid cluster size 2^(10+${logClusterSize})`, { block: 0 });
  }
  // ext4_fill_super / ext4_handle_clustersize: a sane log, and without bigalloc a cluster is one block.
  if (logClusterSize > 20) throw corrupted(`invalid log cluster size ${logClusterSize}`, { block: 0 });
  if (!bigalloc && logClusterSize !== logBlockSize) throw corrupted(`cluster size 2^(10+${logClusterSize}) differs from the block size without bigalloc`, { block: 0 });
  const clusterSize = bigalloc ? 1024 * 2 ** logClusterSize : blockSize;
  const revLevel = u32(b, 0x4c);
  const seed = new Uint32Array(4);
  for (let i = 0; i < 4; i++) seed[i] = u32(b, 0xec + i * 4);
  const jnl = new Uint32Array(17);
  for (let i = 0; i < 17; i++) jnl[i] = u32(b, 0x10c + i * 4);
  const sb: Superblock = {
    inodesCount: u32(b, 0x0),
    blocksCount: hiLo(bit64 ? u32(b, 0x150) : 0, u32(b, 0x4)),
    reservedBlocksCount: hiLo(bit64 ? u32(b, 0x154) : 0, u32(b, 0x8)),
    freeBlocksCount: hiLo(bit64 ? u32(b, 0x158) : 0, u32(b, 0xc)),
    freeInodesCount: u32(b, 0x10),
    firstDataBlock: u32(b, 0x14),
    logBlockSize,
    logClusterSize: bigalloc ? logClusterSize : logBlockSize,
    blockSize,
    clusterSize,
    blocksPerGroup: u32(b, 0x20),
    clustersPerGroup: bigalloc ? u32(b, 0x24) : u32(b, 0x20),
    inodesPerGroup: u32(b, 0x28),
    mtime: u32(b, 0x2c),
    wtime: u32(b, 0x30),
    mountCount: u16(b, 0x34),
    maxMountCount: u16(b, 0x36),
    state: u16(b, 0x3a),
    errors: u16(b, 0x3c),
    minorRevLevel: u16(b, 0x3e),
    lastCheck: u32(b, 0x40),
    checkInterval: u32(b, 0x44),
    creatorOs: u32(b, 0x48),
    revLevel,
    defResuid: u16(b, 0x50),
    defResgid: u16(b, 0x52),
    firstIno: revLevel === 0 ? 11 : u32(b, 0x54),
    inodeSize: revLevel === 0 ? 128 : u16(b, 0x58),
    blockGroupNr: u16(b, 0x5a),
    featureCompat: u32(b, 0x5c),
    featureIncompat: incompat,
    featureRoCompat: u32(b, 0x64),
    uuid: b.slice(0x68, 0x78),
    uuidText: uuidString(b, 0x68),
    volumeName: cString(b, 0x78, 16),
    lastMounted: cString(b, 0x88, 64),
    reservedGdtBlocks: u16(b, 0xce),
    journalUuid: b.slice(0xd0, 0xe0),
    journalInum: u32(b, 0xe0),
    journalDev: u32(b, 0xe4),
    lastOrphan: u32(b, 0xe8),
    hashSeed: seed,
    defHashVersion: u8(b, 0xfc),
    jnlBackupType: u8(b, 0xfd),
    descSize: bit64 ? u16(b, 0xfe) : 32,
    defaultMountOpts: u32(b, 0x100),
    firstMetaBg: u32(b, 0x104),
    mkfsTime: u32(b, 0x108),
    jnlBlocks: jnl,
    minExtraIsize: u16(b, 0x15c),
    wantExtraIsize: u16(b, 0x15e),
    flags: u32(b, 0x160),
    mmpInterval: u16(b, 0x166),
    mmpBlock: hiLo(u32(b, 0x16c), u32(b, 0x168)),
    logGroupsPerFlex: u8(b, 0x174),
    checksumType: u8(b, 0x175),
    kbytesWritten: hiLo(u32(b, 0x17c), u32(b, 0x178)),
    errorCount: u32(b, 0x194),
    mountOpts: cString(b, 0x200, 64),
    lpfIno: u32(b, 0x268),
    backupBgs: [u32(b, 0x24c), u32(b, 0x250)],
    checksumSeed: u32(b, 0x270),
    encoding: u16(b, 0x27c),
    encodingFlags: u16(b, 0x27e),
    orphanFileInum: u32(b, 0x280),
    quotaInums: [u32(b, 0x240), u32(b, 0x244), u32(b, 0x26c)],
    checksum: u32(b, SB_CHECKSUM_OFFSET),
    raw,
  };
  validateGeometry(sb);
  return sb;
}

function validateGeometry(sb: Superblock): void {
  const bad = (what: string) => { throw corrupted(`superblock: ${what}`, { block: sb.firstDataBlock }); };
  if (sb.blocksCount === 0) bad("zero blocks");
  if (sb.blocksPerGroup === 0 || sb.inodesPerGroup === 0 || sb.clustersPerGroup === 0) bad("zero blocks or inodes per group");
  if (sb.blocksPerGroup > sb.blockSize * 8 * (sb.clusterSize / sb.blockSize)) bad(`blocks per group ${sb.blocksPerGroup} exceeds one bitmap block`);
  if (sb.inodesPerGroup > sb.blockSize * 8) bad(`inodes per group ${sb.inodesPerGroup} exceeds one bitmap block`);
  if (sb.inodeSize < 128 || sb.inodeSize > sb.blockSize || (sb.inodeSize & (sb.inodeSize - 1)) !== 0) bad(`inode size ${sb.inodeSize}`);
  if (sb.firstDataBlock > 1) bad(`first data block ${sb.firstDataBlock}`);
  // ext4_fill_super: with 64bit the descriptors are EXT4_MIN_DESC_SIZE_64BIT (64) bytes or more.
  if (is64bit(sb) && (sb.descSize < 64 || sb.descSize > 1024 || (sb.descSize & (sb.descSize - 1)) !== 0)) bad(`descriptor size ${sb.descSize}`);
  // ext4_inode_info_init: with extra_isize, neither size may exceed the room past the first 128 bytes.
  if (sb.inodeSize > 128 && sb.featureRoCompat & RO_COMPAT.EXTRA_ISIZE) {
    if (sb.wantExtraIsize > sb.inodeSize - 128) bad(`s_want_extra_isize ${sb.wantExtraIsize}`);
    if (sb.minExtraIsize > sb.inodeSize - 128) bad(`s_min_extra_isize ${sb.minExtraIsize}`);
  }
  const groups = groupCount(sb);
  if (Math.ceil(sb.inodesCount / sb.inodesPerGroup) > groups || sb.inodesCount > groups * sb.inodesPerGroup) {
    bad(`inode count ${sb.inodesCount} does not fit ${groups} groups of ${sb.inodesPerGroup}`);
  }
  if (sb.firstIno < 11 && sb.revLevel > 0) bad(`first inode ${sb.firstIno}`);
}

export function groupCount(sb: Superblock): number {
  return Math.ceil((sb.blocksCount - sb.firstDataBlock) / sb.blocksPerGroup);
}

/** Writes the mutable summary fields back into `raw` (checksum left to the caller). */
export function encodeSuperblockCounts(sb: Superblock): Uint8Array {
  const b = sb.raw;
  setU32(b, 0x0c, sb.freeBlocksCount >>> 0);
  if (is64bit(sb)) setU32(b, 0x158, Math.floor(sb.freeBlocksCount / 0x100000000));
  setU32(b, 0x10, sb.freeInodesCount);
  setU32(b, 0x60, sb.featureIncompat);
  setU32(b, 0x64, sb.featureRoCompat);
  setU32(b, 0x5c, sb.featureCompat);
  setU32(b, 0xe8, sb.lastOrphan);
  return b;
}
