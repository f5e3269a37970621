// jbd2 on-disk structures (the ext4 journal): decode and encode of the
// big-endian superblock, block header, descriptor tags, commit and revoke
// blocks, plus their checksums. Pure codecs: no I/O and no policy; the
// recovery code decides what a bad value means.

import { crc32c } from "../wasm/module.js";

export const JBD2_MAGIC = 0xc03b3998;

/** Header block types. */
export const BLOCKTYPE = {
  DESCRIPTOR: 1,
  COMMIT: 2,
  SUPERBLOCK_V1: 3,
  SUPERBLOCK_V2: 4,
  REVOKE: 5,
  FAST_COMMIT: 6,
} as const;

export const JBD2_COMPAT = { CHECKSUM: 0x1 } as const;
export const JBD2_INCOMPAT = {
  REVOKE: 0x1,
  BIT64: 0x2,
  ASYNC_COMMIT: 0x4,
  CSUM_V2: 0x8,
  CSUM_V3: 0x10,
  FAST_COMMIT: 0x20,
} as const;
export const JBD2_KNOWN_COMPAT = JBD2_COMPAT.CHECKSUM;
export const JBD2_KNOWN_INCOMPAT = 0x3f;
export const JBD2_KNOWN_RO_COMPAT = 0;

/** Descriptor tag flags (16 bits on disk; the low half of the v3 32-bit word). */
export const TAG_FLAG = { ESCAPE: 1, SAME_UUID: 2, DELETED: 4, LAST_TAG: 8 } as const;

/** Commit block h_chksum_type values. */
export const CHKSUM_TYPE = { CRC32: 1, MD5: 2, SHA1: 3, CRC32C: 4 } as const;
export const CRC32_CHKSUM_SIZE = 4;

export const JOURNAL_SUPERBLOCK_SIZE = 1024;
export const HEADER_SIZE = 12;
export const BLOCK_TAIL_SIZE = 4;
export const REVOKE_HEADER_SIZE = 16;
export const COMMIT_HEADER_SIZE = 60;
export const UUID_SIZE = 16;
export const JBD2_MIN_JOURNAL_BLOCKS = 1024;
export const JBD2_DEFAULT_FAST_COMMIT_BLOCKS = 256;

const SB_CHECKSUM_OFFSET = 0xfc;
const COMMIT_CHKSUM_OFFSET = 0x10;

// ---------------------------------------------------------------- big-endian access

export function be16(b: Uint8Array, o: number): number { return (b[o] << 8) | b[o + 1]; }
export function be32(b: Uint8Array, o: number): number {
  return ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;
}
export function setBe16(b: Uint8Array, o: number, v: number): void { b[o] = (v >>> 8) & 0xff; b[o + 1] = v & 0xff; }
export function setBe32(b: Uint8Array, o: number, v: number): void {
  b[o] = (v >>> 24) & 0xff; b[o + 1] = (v >>> 16) & 0xff; b[o + 2] = (v >>> 8) & 0xff; b[o + 3] = v & 0xff;
}
/** A 64-bit block number from hi/lo halves, or null when it does not fit a JS number exactly. */
export function blockNr(hi: number, lo: number): number | null {
  return hi >= 0x200000 ? null : hi * 0x100000000 + lo;
}

// ---------------------------------------------------------------- header

export interface JournalHeader {
  magic: number;
  blocktype: number;
  sequence: number;
}

export function decodeHeader(b: Uint8Array): JournalHeader {
  return { magic: be32(b, 0), blocktype: be32(b, 4), sequence: be32(b, 8) };
}

export function encodeHeader(b: Uint8Array, h: { blocktype: number; sequence: number; magic?: number }): void {
  setBe32(b, 0, h.magic ?? JBD2_MAGIC);
  setBe32(b, 4, h.blocktype);
  setBe32(b, 8, h.sequence >>> 0);
}

// ---------------------------------------------------------------- superblock

export interface JournalSuperblock {
  header: JournalHeader;
  blockSize: number;
  maxLen: number;
  first: number;
  sequence: number;
  start: number;
  errno: number;
  featureCompat: number;
  featureIncompat: number;
  featureRoCompat: number;
  uuid: Uint8Array;
  nrUsers: number;
  dynSuper: number;
  maxTransaction: number;
  maxTransData: number;
  checksumType: number;
  numFcBlocks: number;
  /** Where the log resumes after a clean unmount (kernel 6.4+); 0 if unset. */
  head: number;
  checksum: number;
  users: Uint8Array;
}

/** Decodes the first 1024 bytes of journal block 0. A v1 superblock has no fields past s_errno. */
export function decodeJournalSuperblock(b: Uint8Array): JournalSuperblock {
  if (b.length < JOURNAL_SUPERBLOCK_SIZE) throw new RangeError(`journal superblock needs ${JOURNAL_SUPERBLOCK_SIZE} bytes`);
  const header = decodeHeader(b);
  const v2 = header.blocktype !== BLOCKTYPE.SUPERBLOCK_V1;
  const f = (o: number) => (v2 ? be32(b, o) : 0);
  return {
    header,
    blockSize: be32(b, 0x0c),
    maxLen: be32(b, 0x10),
    first: be32(b, 0x14),
    sequence: be32(b, 0x18),
    start: be32(b, 0x1c),
    errno: be32(b, 0x20) | 0,
    featureCompat: f(0x24),
    featureIncompat: f(0x28),
    featureRoCompat: f(0x2c),
    uuid: v2 ? b.slice(0x30, 0x40) : new Uint8Array(16),
    nrUsers: f(0x40),
    dynSuper: f(0x44),
    maxTransaction: f(0x48),
    maxTransData: f(0x4c),
    checksumType: v2 ? b[0x50] : 0,
    numFcBlocks: f(0x54),
    head: f(0x58),
    checksum: f(SB_CHECKSUM_OFFSET),
    users: v2 ? b.slice(0x100, 0x400) : new Uint8Array(0x300),
  };
}

/**
 * Writes `sb` into a 1024-byte superblock. With `base`, bytes no field covers
 * (padding) are kept from it. The checksum field is written as given; call
 * setJournalSuperblockChecksum afterwards if it must be valid.
 */
export function encodeJournalSuperblock(sb: JournalSuperblock, base?: Uint8Array): Uint8Array {
  const b = new Uint8Array(JOURNAL_SUPERBLOCK_SIZE);
  if (base) b.set(base.subarray(0, JOURNAL_SUPERBLOCK_SIZE));
  encodeHeader(b, sb.header);
  setBe32(b, 0x0c, sb.blockSize);
  setBe32(b, 0x10, sb.maxLen);
  setBe32(b, 0x14, sb.first);
  setBe32(b, 0x18, sb.sequence >>> 0);
  setBe32(b, 0x1c, sb.start);
  setBe32(b, 0x20, sb.errno >>> 0);
  if (sb.header.blocktype === BLOCKTYPE.SUPERBLOCK_V1) return b;
  setBe32(b, 0x24, sb.featureCompat);
  setBe32(b, 0x28, sb.featureIncompat);
  setBe32(b, 0x2c, sb.featureRoCompat);
  b.set(sb.uuid.subarray(0, UUID_SIZE), 0x30);
  setBe32(b, 0x40, sb.nrUsers);
  setBe32(b, 0x44, sb.dynSuper);
  setBe32(b, 0x48, sb.maxTransaction);
  setBe32(b, 0x4c, sb.maxTransData);
  b[0x50] = sb.checksumType;
  setBe32(b, 0x54, sb.numFcBlocks);
  setBe32(b, 0x58, sb.head);
  setBe32(b, SB_CHECKSUM_OFFSET, sb.checksum);
  b.set(sb.users.subarray(0, 0x300), 0x100);
  return b;
}

/** crc32c(~0) over the 1024-byte superblock with s_checksum taken as zero. */
export function journalSuperblockChecksum(b: Uint8Array): number {
  let c = crc32c(0xffffffff, b.subarray(0, SB_CHECKSUM_OFFSET));
  c = crc32c(c, ZERO4);
  return crc32c(c, b.subarray(SB_CHECKSUM_OFFSET + 4, JOURNAL_SUPERBLOCK_SIZE));
}
export function verifyJournalSuperblockChecksum(b: Uint8Array): boolean {
  return journalSuperblockChecksum(b) === be32(b, SB_CHECKSUM_OFFSET);
}
export function setJournalSuperblockChecksum(b: Uint8Array): void {
  setBe32(b, SB_CHECKSUM_OFFSET, journalSuperblockChecksum(b));
}

// ---------------------------------------------------------------- feature helpers

export function hasCsumV2or3(incompat: number): boolean {
  return (incompat & (JBD2_INCOMPAT.CSUM_V2 | JBD2_INCOMPAT.CSUM_V3)) !== 0;
}

/** Bytes per descriptor tag, before any UUID: 16 (v3), else 8 (+4 with 64BIT, +2 with CSUM_V2). */
export function tagBytes(incompat: number): number {
  if (incompat & JBD2_INCOMPAT.CSUM_V3) return 16;
  let sz = 12;
  if (incompat & JBD2_INCOMPAT.CSUM_V2) sz += 2;
  return incompat & JBD2_INCOMPAT.BIT64 ? sz : sz - 4;
}

/** Blocks reserved for fast commits at the end of the journal (0 without the feature). */
export function fastCommitBlocks(sb: Pick<JournalSuperblock, "featureIncompat" | "numFcBlocks">): number {
  if (!(sb.featureIncompat & JBD2_INCOMPAT.FAST_COMMIT)) return 0;
  return sb.numFcBlocks || JBD2_DEFAULT_FAST_COMMIT_BLOCKS;
}

/** The per-journal checksum seed: crc32c(~0, uuid). */
export function journalCsumSeed(uuid: Uint8Array): number {
  return crc32c(0xffffffff, uuid.subarray(0, UUID_SIZE));
}

// ---------------------------------------------------------------- descriptor tags

export interface BlockTag {
  /** Filesystem block number; null if beyond 2^53 (cannot be a real block). */
  blockNr: number | null;
  flags: number;
  /** v3: 32-bit checksum; v2: 16-bit checksum; otherwise 0. */
  checksum: number;
  /** Byte offset of the tag in its descriptor block. */
  offset: number;
  /** The UUID following the tag when SAME_UUID is clear (it may be cut off by the block end). */
  uuid?: Uint8Array;
}

/**
 * Tags of a descriptor block, walked the way jbd2 recovery walks them: from
 * offset 12, one tag while a whole tag fits before the tail, skipping the
 * 16-byte UUID after any tag without SAME_UUID, stopping after LAST_TAG.
 * The count is bounded by the block size.
 */
export function decodeDescriptorTags(block: Uint8Array, blockSize: number, incompat: number): BlockTag[] {
  const tb = tagBytes(incompat);
  const limit = blockSize - (hasCsumV2or3(incompat) ? BLOCK_TAIL_SIZE : 0);
  const v3 = (incompat & JBD2_INCOMPAT.CSUM_V3) !== 0;
  const v2 = (incompat & JBD2_INCOMPAT.CSUM_V2) !== 0;
  const is64 = (incompat & JBD2_INCOMPAT.BIT64) !== 0;
  const tags: BlockTag[] = [];
  let off = HEADER_SIZE;
  while (off + tb <= limit) {
    const flags = be16(block, off + 6);
    const lo = be32(block, off);
    const tag: BlockTag = {
      blockNr: is64 ? blockNr(be32(block, off + 8), lo) : lo,
      flags,
      checksum: v3 ? be32(block, off + 12) : v2 ? be16(block, off + 4) : 0,
      offset: off,
    };
    off += tb;
    if (!(flags & TAG_FLAG.SAME_UUID)) {
      tag.uuid = block.slice(off, Math.min(off + UUID_SIZE, blockSize));
      off += UUID_SIZE;
    }
    tags.push(tag);
    if (flags & TAG_FLAG.LAST_TAG) break;
  }
  return tags;
}

/**
 * Writes one tag at `off` and returns the offset after it (and after the UUID
 * when SAME_UUID is clear). The caller leaves room: tagBytes (+16).
 */
export function encodeTag(
  block: Uint8Array, off: number, incompat: number,
  tag: { blockNr: number; flags: number; checksum?: number; uuid?: Uint8Array },
): number {
  const tb = tagBytes(incompat);
  block.fill(0, off, off + tb);
  setBe32(block, off, tag.blockNr >>> 0);
  setBe16(block, off + 6, tag.flags & 0xffff);
  if (incompat & JBD2_INCOMPAT.BIT64) setBe32(block, off + 8, Math.floor(tag.blockNr / 0x100000000) >>> 0);
  if (incompat & JBD2_INCOMPAT.CSUM_V3) setBe32(block, off + 12, (tag.checksum ?? 0) >>> 0);
  else if (incompat & JBD2_INCOMPAT.CSUM_V2) setBe16(block, off + 4, (tag.checksum ?? 0) & 0xffff);
  off += tb;
  if (!(tag.flags & TAG_FLAG.SAME_UUID)) {
    block.fill(0, off, off + UUID_SIZE);
    if (tag.uuid) block.set(tag.uuid.subarray(0, UUID_SIZE), off);
    off += UUID_SIZE;
  }
  return off;
}

/** crc32c(seed, be32 sequence) continued over the data block as logged. */
export function dataBlockChecksum(seed: number, sequence: number, data: Uint8Array): number {
  const seq = new Uint8Array(4);
  setBe32(seq, 0, sequence >>> 0);
  return crc32c(crc32c(seed, seq), data);
}

/** Whether a tag's stored checksum matches (v3 compares 32 bits, v2 the low 16). */
export function tagChecksumMatches(incompat: number, tag: Pick<BlockTag, "checksum">, csum32: number): boolean {
  if (incompat & JBD2_INCOMPAT.CSUM_V3) return tag.checksum === csum32 >>> 0;
  return tag.checksum === (csum32 & 0xffff);
}

/** The value to store in a tag for `csum32` under the journal's checksum version. */
export function tagChecksumValue(incompat: number, csum32: number): number {
  return incompat & JBD2_INCOMPAT.CSUM_V3 ? csum32 >>> 0 : csum32 & 0xffff;
}

// ---------------------------------------------------------------- block tail (descriptor, revoke)

/** crc32c(seed) over the whole block with its last 4 bytes taken as zero. */
export function blockTailChecksum(seed: number, block: Uint8Array, blockSize: number): number {
  return crc32c(crc32c(seed, block.subarray(0, blockSize - BLOCK_TAIL_SIZE)), ZERO4);
}
export function verifyBlockTail(seed: number, block: Uint8Array, blockSize: number): boolean {
  return blockTailChecksum(seed, block, blockSize) === be32(block, blockSize - BLOCK_TAIL_SIZE);
}
export function setBlockTail(seed: number, block: Uint8Array, blockSize: number): void {
  setBe32(block, blockSize - BLOCK_TAIL_SIZE, blockTailChecksum(seed, block, blockSize));
}

// ---------------------------------------------------------------- commit block

export interface CommitBlock {
  header: JournalHeader;
  chksumType: number;
  chksumSize: number;
  /** h_chksum[0..7]; [0] holds the v1 crc32 or the v2/v3 crc32c. */
  chksum: number[];
  commitSec: bigint;
  commitNsec: number;
}

export function decodeCommit(b: Uint8Array): CommitBlock {
  const chksum: number[] = [];
  for (let i = 0; i < 8; i++) chksum.push(be32(b, COMMIT_CHKSUM_OFFSET + 4 * i));
  return {
    header: decodeHeader(b),
    chksumType: b[12],
    chksumSize: b[13],
    chksum,
    commitSec: (BigInt(be32(b, 0x30)) << 32n) | BigInt(be32(b, 0x34)),
    commitNsec: be32(b, 0x38),
  };
}

/** Writes a commit header into `b` (the rest of the block is left as is). */
export function encodeCommit(b: Uint8Array, c: Omit<CommitBlock, "header"> & { header: { blocktype?: number; sequence: number } }): void {
  encodeHeader(b, { blocktype: c.header.blocktype ?? BLOCKTYPE.COMMIT, sequence: c.header.sequence });
  b[12] = c.chksumType;
  b[13] = c.chksumSize;
  b[14] = 0;
  b[15] = 0;
  for (let i = 0; i < 8; i++) setBe32(b, COMMIT_CHKSUM_OFFSET + 4 * i, (c.chksum[i] ?? 0) >>> 0);
  setBe32(b, 0x30, Number((c.commitSec >> 32n) & 0xffffffffn));
  setBe32(b, 0x34, Number(c.commitSec & 0xffffffffn));
  setBe32(b, 0x38, c.commitNsec >>> 0);
}

/** v2/v3: crc32c(seed) over the whole block with h_chksum[0] taken as zero. */
export function commitChecksum(seed: number, block: Uint8Array, blockSize: number): number {
  let c = crc32c(seed, block.subarray(0, COMMIT_CHKSUM_OFFSET));
  c = crc32c(c, ZERO4);
  return crc32c(c, block.subarray(COMMIT_CHKSUM_OFFSET + 4, blockSize));
}

/**
 * The same over only the 60-byte commit header followed by zeros: newer
 * kernels accept this for a commit block whose tail was never written.
 */
export function commitChecksumHeaderOnly(seed: number, block: Uint8Array, blockSize: number): number {
  let c = crc32c(seed, block.subarray(0, COMMIT_CHKSUM_OFFSET));
  c = crc32c(c, ZERO4);
  c = crc32c(c, block.subarray(COMMIT_CHKSUM_OFFSET + 4, COMMIT_HEADER_SIZE));
  return crc32c(c, zeros(blockSize - COMMIT_HEADER_SIZE));
}

export function setCommitChecksum(seed: number, block: Uint8Array, blockSize: number): void {
  setBe32(block, COMMIT_CHKSUM_OFFSET, commitChecksum(seed, block, blockSize));
}

// ---------------------------------------------------------------- revoke block

export interface RevokeBlock {
  header: JournalHeader;
  /** r_count: bytes used, including the 16-byte header. */
  count: number;
  /** Revoked fs blocks; null entries do not fit a JS number (cannot be real blocks). */
  blocks: (number | null)[];
}

/** Records are read up to min(r_count, the space before the tail). Validating r_count is the caller's job. */
export function decodeRevoke(b: Uint8Array, blockSize: number, incompat: number): RevokeBlock {
  const count = be32(b, 12);
  const rec = incompat & JBD2_INCOMPAT.BIT64 ? 8 : 4;
  const end = Math.min(count, blockSize - (hasCsumV2or3(incompat) ? BLOCK_TAIL_SIZE : 0));
  const blocks: (number | null)[] = [];
  for (let off = REVOKE_HEADER_SIZE; off + rec <= end; off += rec) {
    blocks.push(rec === 8 ? blockNr(be32(b, off), be32(b, off + 4)) : be32(b, off));
  }
  return { header: decodeHeader(b), count, blocks };
}

/** Writes a revoke header and records into `b`; returns r_count. */
export function encodeRevoke(b: Uint8Array, blockSize: number, incompat: number, sequence: number, blocks: number[]): number {
  const rec = incompat & JBD2_INCOMPAT.BIT64 ? 8 : 4;
  const room = blockSize - (hasCsumV2or3(incompat) ? BLOCK_TAIL_SIZE : 0);
  const count = REVOKE_HEADER_SIZE + blocks.length * rec;
  if (count > room) throw new RangeError(`${blocks.length} revoke records do not fit a ${blockSize}-byte block`);
  encodeHeader(b, { blocktype: BLOCKTYPE.REVOKE, sequence });
  setBe32(b, 12, count);
  let off = REVOKE_HEADER_SIZE;
  for (const n of blocks) {
    if (rec === 8) { setBe32(b, off, Math.floor(n / 0x100000000) >>> 0); setBe32(b, off + 4, n >>> 0); }
    else setBe32(b, off, n >>> 0);
    off += rec;
  }
  return count;
}

// ---------------------------------------------------------------- v1 transaction checksum

// The COMPAT_CHECKSUM commit value is the kernel's crc32_be (MSB-first,
// polynomial 0x04C11DB7, no inversions), seeded with ~0 per transaction and
// run over each descriptor block and the data blocks it tags.
const CRC32_BE_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i << 24;
    for (let k = 0; k < 8; k++) c = c & 0x80000000 ? (c << 1) ^ 0x04c11db7 : c << 1;
    t[i] = c >>> 0;
  }
  return t;
})();

export function crc32Be(seed: number, bytes: Uint8Array): number {
  let c = seed >>> 0;
  for (let i = 0; i < bytes.length; i++) c = ((c << 8) ^ CRC32_BE_TABLE[((c >>> 24) ^ bytes[i]) & 0xff]) >>> 0;
  return c;
}

// ---------------------------------------------------------------- tids

/** Wrap-safe tid order: the signed 32-bit difference. */
export function tidGt(x: number, y: number): boolean { return ((x - y) | 0) > 0; }
export function tidGeq(x: number, y: number): boolean { return ((x - y) | 0) >= 0; }

// ---------------------------------------------------------------- internals

const ZERO4 = new Uint8Array(4);
let zeroBuf = new Uint8Array(0);
function zeros(n: number): Uint8Array {
  if (zeroBuf.length < n) zeroBuf = new Uint8Array(n);
  return zeroBuf.subarray(0, n);
}
