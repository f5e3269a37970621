// Locating and loading block group descriptors (classic GDT after the
// superblock, or meta_bg clusters), with their checksums verified.

import { corrupted } from "../errors.js";
import { BG_CHECKSUM_OFFSET, decodeGroupDesc, encodeGroupDesc, GroupDesc } from "../format/group-desc.js";
import { setU16 } from "../format/bytes.js";
import type { Handle } from "../journal/handle.js";
import { COMPAT, INCOMPAT, RO_COMPAT } from "../format/features.js";
import { groupCount, hasIncompat, hasRoCompat, Superblock, SUPERBLOCK_OFFSET } from "../format/superblock.js";
import type { BufferCache } from "../cache/buffer-cache.js";
import type { Checksums } from "./csum.js";
import type { Ext4 } from "./super.js";

function isPowerOf(n: number, base: number): boolean {
  if (n < 1) return false;
  while (n % base === 0) n /= base;
  return n === 1;
}

/** Does group g carry a superblock backup (and so a GDT backup)? */
export function groupHasSuper(sb: Superblock, g: number): boolean {
  if (g === 0) return true;
  // sparse_super2: backups only in the (at most two) groups the superblock names.
  if (sb.featureCompat & COMPAT.SPARSE_SUPER2) return g === sb.backupBgs[0] || g === sb.backupBgs[1];
  if (!hasRoCompat(sb, RO_COMPAT.SPARSE_SUPER)) return true;
  if (g === 1) return true;
  return isPowerOf(g, 3) || isPowerOf(g, 5) || isPowerOf(g, 7);
}

export function groupFirstBlock(sb: Superblock, g: number): number {
  return sb.firstDataBlock + g * sb.blocksPerGroup;
}

/** Block holding descriptor block `i` of the primary GDT. */
export function descriptorBlock(sb: Superblock, i: number): number {
  const perBlock = sb.blockSize / sb.descSize;
  // The GDT follows the superblock's own block: block 1 at 1 KiB blocks even when
  // s_first_data_block is 0 (bigalloc), not firstDataBlock + 1.
  const superBlock = Math.floor(SUPERBLOCK_OFFSET / sb.blockSize);
  if (!hasIncompat(sb, INCOMPAT.META_BG) || i < sb.firstMetaBg) return superBlock + 1 + i;
  // meta_bg: descriptor block i lives in the first group of its meta group.
  const g = i * perBlock;
  const bumped = sb.blockSize === 1024 && i === 0 && sb.firstDataBlock === 0 ? 1 : 0;
  return groupFirstBlock(sb, g) + (groupHasSuper(sb, g) ? 1 : 0) + bumped;
}

/**
 * The group descriptors, checked as ext4_check_descriptors checks them. A
 * descriptor checksum mismatch refuses a read-write mount; read-only, the
 * kernel logs it and mounts, and so do we (`warn`).
 */
export function loadGroupDescriptors(sb: Superblock, bc: BufferCache, csum: Checksums, verify: boolean, readOnly: boolean, warn: (m: string) => void): GroupDesc[] {
  const groups = groupCount(sb);
  const perBlock = sb.blockSize / sb.descSize;
  const nBlocks = Math.ceil(groups / perBlock);
  if (groups > 1 << 24) throw corrupted(`implausible group count ${groups}`);
  const out: GroupDesc[] = [];
  const metaCsum = hasRoCompat(sb, RO_COMPAT.METADATA_CSUM);
  const gdtCsum = hasRoCompat(sb, RO_COMPAT.GDT_CSUM);
  for (let i = 0; i < nBlocks; i++) {
    const pblk = descriptorBlock(sb, i);
    const b = bc.read(pblk, "group descriptor block");
    for (let j = 0; j < perBlock && out.length < groups; j++) {
      const g = out.length;
      const o = j * sb.descSize;
      const raw = b.subarray(o, o + sb.descSize);
      const gd = decodeGroupDesc(b, o, sb.descSize);
      if (verify && (metaCsum || gdtCsum)) {
        const want = metaCsum ? csum.groupDescCsum32(g, raw) : csum.groupDescCsum16(sb.uuid, g, raw);
        if (want !== gd.checksum) {
          const what = `group ${g} descriptor checksum mismatch (stored 0x${gd.checksum.toString(16)}, computed 0x${want.toString(16)})`;
          if (!readOnly) throw corrupted(`${what}; a read-only mount reads past it, as the kernel's does`, { block: pblk });
          warn(`${what}, descriptor block ${pblk}: mounted read-only anyway, as the kernel does`);
        }
      }
      checkDescriptor(sb, g, gd, pblk);
      out.push(gd);
    }
  }
  return out;
}

function checkDescriptor(sb: Superblock, g: number, gd: GroupDesc, pblk: number): void {
  const itableBlocks = Math.ceil((sb.inodesPerGroup * sb.inodeSize) / sb.blockSize);
  const inFs = (b: number, n: number) => b >= sb.firstDataBlock && b + n <= sb.blocksCount;
  if (!inFs(gd.blockBitmap, 1)) throw corrupted(`group ${g} block bitmap ${gd.blockBitmap} outside the filesystem`, { block: pblk });
  if (!inFs(gd.inodeBitmap, 1)) throw corrupted(`group ${g} inode bitmap ${gd.inodeBitmap} outside the filesystem`, { block: pblk });
  if (!inFs(gd.inodeTable, itableBlocks)) throw corrupted(`group ${g} inode table ${gd.inodeTable} outside the filesystem`, { block: pblk });
}

/**
 * Re-encodes `fs.groups[g]` into its descriptor block with its checksum, as
 * ext4_group_desc_csum_set before ext4_handle_dirty_metadata. Bitmap
 * checksums in the descriptor are the caller's (they follow the bitmaps).
 */
export function markGroupDescDirty(handle: Handle, fs: Ext4, g: number): void {
  const sb = fs.sb;
  const perBlock = sb.blockSize / sb.descSize;
  const bh = fs.bcache.bread(descriptorBlock(sb, Math.floor(g / perBlock)), "group descriptor block");
  try {
    handle.getWriteAccess(bh);
    const b = bh.data;
    const o = (g % perBlock) * sb.descSize;
    const gd = fs.groups[g];
    encodeGroupDesc(gd, b, o, sb.descSize);
    gd.checksum = groupDescChecksum(fs, g, b.subarray(o, o + sb.descSize));
    setU16(b, o + BG_CHECKSUM_OFFSET, gd.checksum);
    handle.dirtyMetadata(bh);
  } finally {
    fs.bcache.brelse(bh);
  }
}

/** The descriptor checksum the features call for (crc32c low 16, crc16 with gdt_csum, else 0). */
export function groupDescChecksum(fs: Ext4, g: number, raw: Uint8Array): number {
  if (fs.metadataCsum) return fs.csum.groupDescCsum32(g, raw);
  if (hasRoCompat(fs.sb, RO_COMPAT.GDT_CSUM)) return fs.csum.groupDescCsum16(fs.sb.uuid, g, raw);
  return 0;
}
