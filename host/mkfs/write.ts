// Writes a planned filesystem to a device: superblocks and descriptor tables
// (primary and backups), the bitmaps of initialised groups, the used part of
// the first inode table, the root directory, lost+found, the resize inode's
// blocks, the journal superblock (and extent leaf) and the orphan file.
// Lazy zeroing: on a device known to read as zeros nothing else is written;
// otherwise the regions that must read as zeros are read and zeroed where
// they are not (so a sparse file stays sparse either way).

import type { BlockDevice } from "../device/block-device.js";
import { setU32 } from "../format/bytes.js";
import { BG_FLAGS } from "../format/group-desc.js";
import { S_IFDIR, S_IFREG } from "../format/inode.js";
import { Checksums } from "../fs/csum.js";
import { sharedWasm } from "../wasm/module.js";
import {
  blockBitmapBytes, dirBlockBytes, extentLeafBytes, groupDescBytes, inodeBitmapBytes, inodeBlockArea, inodeBytes,
  journalSuperblockBytes, orphanBlockBytes, superblockBytes, type InodeSpec,
} from "./encode.js";
import { backupGroups, JOURNAL_INO, LOST_FOUND_INO, RESIZE_INO, ROOT_INO, type FileLayout, type Layout } from "./layout.js";
import { hasFeature } from "./options.js";

const EXTENTS_FL = 0x80000;
const ZERO_CHUNK = 1 << 20;

export interface WriteStats {
  /** Bytes of metadata written. */
  metadataBytes: number;
  /** Bytes of zeros written where old content had to be cleared. */
  zeroedBytes: number;
}

/** The filesystem's crc32c seed: s_checksum_seed with metadata_csum_seed, else crc32c(~0, uuid). */
export function checksumsFor(l: Layout): Checksums {
  const w = sharedWasm();
  return new Checksums(w, w.crc32c(0xffffffff, l.p.uuid) >>> 0);
}

class Writer {
  readonly stats: WriteStats = { metadataBytes: 0, zeroedBytes: 0 };
  private zero?: Uint8Array;
  constructor(private readonly dev: BlockDevice, private readonly bs: number, private readonly zeroed: boolean) {}

  block(blk: number, bytes: Uint8Array): void {
    this.dev.write(blk * this.bs, bytes);
    this.stats.metadataBytes += bytes.length;
  }
  bytes(pos: number, bytes: Uint8Array): void {
    this.dev.write(pos, bytes);
    this.stats.metadataBytes += bytes.length;
  }

  /** Makes [blk, blk + n) read as zeros: nothing to do on a zeroed device; else read, and zero what is not. */
  ensureZero(blk: number, n: number): void {
    if (this.zeroed || n <= 0) return;
    this.zero ??= new Uint8Array(ZERO_CHUNK);
    const buf = new Uint8Array(ZERO_CHUNK);
    let pos = blk * this.bs;
    const end = Math.min((blk + n) * this.bs, this.dev.size);
    while (pos < end) {
      const len = Math.min(ZERO_CHUNK, end - pos);
      const view = buf.subarray(0, len);
      this.dev.read(pos, view);
      if (!isAllZero(view)) {
        this.dev.write(pos, this.zero.subarray(0, len));
        this.stats.zeroedBytes += len;
      }
      pos += len;
    }
  }
}

function isAllZero(b: Uint8Array): boolean {
  const words = b.length >>> 3;
  const w = new BigUint64Array(b.buffer, b.byteOffset, words);
  for (let i = 0; i < words; i++) if (w[i] !== 0n) return false;
  for (let i = words * 8; i < b.length; i++) if (b[i]) return false;
  return true;
}

/**
 * Writes the layout to the device. `zeroed`: the device is known to read as
 * zeros (a file mkfs created or extended from empty), so no zeroing at all.
 */
export function writeFilesystem(dev: BlockDevice, l: Layout, zeroed: boolean): WriteStats {
  const bs = l.blockSize;
  const csum = checksumsFor(l);
  const seeded = csum; // with metadata_csum_seed, s_checksum_seed holds this same crc32c(~0, uuid)
  const w = new Writer(dev, bs, zeroed);
  const csum32 = hasFeature(l.features, "metadata_csum");

  // Old signatures at the end of the device (MD RAID and the like), as mke2fs wipes them.
  const rsv = Math.max(1, 65536 / bs);
  let start = l.blocksCount - (l.blocksCount % rsv);
  if (start > rsv) start -= rsv;
  if (start > 0) w.ensureZero(start, l.blocksCount - start);

  // Bitmaps of the groups that are not BLOCK_UNINIT / INODE_UNINIT, with their checksums.
  const bitmapCsums = { block: [] as number[], inode: [] as number[] };
  for (let g = 0; g < l.groupCount; g++) {
    const gl = l.groups[g];
    if (!(gl.flags & BG_FLAGS.BLOCK_UNINIT)) {
      const bb = blockBitmapBytes(l, g);
      w.block(gl.blockBitmap, bb);
      if (csum32) bitmapCsums.block[g] = seeded.crc(seeded.seed, bb.subarray(0, l.clustersPerGroup / 8)) >>> 0;
    }
    if (!(gl.flags & BG_FLAGS.INODE_UNINIT)) {
      const ib = inodeBitmapBytes(l, g);
      w.block(gl.inodeBitmap, ib);
      if (csum32) bitmapCsums.inode[g] = seeded.crc(seeded.seed, ib.subarray(0, l.inodesPerGroup / 8)) >>> 0;
    }
  }

  // Inode tables: the blocks holding inodes 1 .. lastIno; the rest zeroed unless lazy_itable_init.
  writeInodes(w, l, seeded);
  for (let g = 0; g < l.groupCount; g++) {
    const gl = l.groups[g];
    const used = Math.max(0, Math.min(l.lastIno - g * l.inodesPerGroup, l.inodesPerGroup));
    const usedBlocks = Math.ceil((used * l.p.inodeSize) / bs);
    if (!l.p.lazyItableInit) w.ensureZero(gl.inodeTable + usedBlocks, l.inodeBlocksPerGroup - usedBlocks);
  }

  // Directories.
  w.block(l.root.extents[0].pblk, dirBlockBytes(l, seeded, ROOT_INO, [[".", ROOT_INO], ["..", ROOT_INO], ["lost+found", LOST_FOUND_INO]]));
  let first = true;
  const inline = hasFeature(l.features, "inline_data");
  for (const e of l.lostFound.extents) {
    for (let i = 0; i < e.len; i++) {
      // Expanded from inline data, the first block keeps "." and ".." at their own sizes.
      const entries: [string, number][] = first ? [[".", LOST_FOUND_INO], ["..", ROOT_INO]] : [];
      w.block(e.pblk + i, dirBlockBytes(l, seeded, LOST_FOUND_INO, entries, !inline));
      first = false;
    }
  }

  if (l.resize) writeResizeBlocks(w, l);

  if (l.journal) {
    const j = l.journal;
    w.block(j.extents[0].pblk, journalSuperblockBytes(l, j.blocks));
    if (j.leafBlock) w.block(j.leafBlock, extentLeafBytes(l, seeded, JOURNAL_INO, j.extents));
    writeIndirect(w, l, j);
    if (!l.p.lazyJournalInit) {
      for (const e of j.extents) w.ensureZero(e.pblk + (e.lblk === 0 ? 1 : 0), e.len - (e.lblk === 0 ? 1 : 0));
    }
  }

  if (l.orphan) {
    for (const e of l.orphan.extents) for (let i = 0; i < e.len; i++) w.block(e.pblk + i, orphanBlockBytes(l, seeded, l.orphan.ino, e.pblk + i));
  }

  // Superblocks and descriptor tables last, as ext2fs_close does.
  const gdt = groupDescBytes(l, seeded, bitmapCsums);
  const sbGroups = [0, ...backupGroups(l.features, l.groupCount)];
  // s_kbytes_written: 1 at creation, plus what mkfs wrote (ext2fs_close adds the bytes its I/O channel wrote).
  const sbBytes = sbGroups.length * (bs === 1024 ? 1024 : bs) + sbGroups.length * gdt.length;
  // mke2fs starts the count only with one of these features (an ext2/ext3 layout keeps 0).
  const counts = hasFeature(l.features, "flex_bg") || hasFeature(l.features, "huge_file") || hasFeature(l.features, "gdt_csum") ||
    hasFeature(l.features, "dir_nlink") || hasFeature(l.features, "metadata_csum") || hasFeature(l.features, "extra_isize");
  const kbytes = !counts ? 0 : 1 + Math.floor((w.stats.metadataBytes + w.stats.zeroedBytes + sbBytes) / 1024);
  for (const g of sbGroups) {
    const gl = l.groups[g];
    const sb = superblockBytes(l, seeded, g, kbytes);
    const sbBlk = g === 0 && gl.first === 0 && bs === 1024 ? 1 : gl.first;
    if (g === 0) {
      // Block 0 holds boot sectors (left alone) and, past 1 KiB, the superblock and zeros.
      const tail = new Uint8Array(bs === 1024 ? 1024 : bs - 1024);
      tail.set(sb, 0);
      w.bytes(1024, tail);
    } else {
      const blk = new Uint8Array(bs);
      blk.set(sb, 0);
      w.block(sbBlk, blk);
    }
    w.block(sbBlk + 1, gdt);
  }
  dev.flush();
  return w.stats;
}

function fileInode(l: Layout, f: FileLayout, mode: number, links: number, size: number): InodeSpec {
  return {
    mode, links, size, blocks: f.allocatedBlocks,
    flags: hasFeature(l.features, "extent") ? EXTENTS_FL : 0,
    iblock: inodeBlockArea(l, f),
  };
}

function writeInodes(w: Writer, l: Layout, csum: Checksums): void {
  const bs = l.blockSize;
  const isz = l.p.inodeSize;
  const perGroup = l.inodesPerGroup;
  const specs = new Map<number, InodeSpec | null>();
  // ext2fs_update_bb_inode: an empty bad-block inode with its times set.
  specs.set(1, { mode: 0, links: 0, size: 0, blocks: 0, flags: 0, iblock: new Uint8Array(60), small: true });
  specs.set(ROOT_INO, { ...fileInode(l, l.root, S_IFDIR | 0o755, 3, bs), uid: l.p.rootUid, gid: l.p.rootGid });
  specs.set(LOST_FOUND_INO, {
    ...fileInode(l, l.lostFound, S_IFDIR | 0o700, 2, l.lostFound.extents.reduce((n, e) => n + e.len, 0) * bs),
    inlineWas: hasFeature(l.features, "inline_data"),
  });
  if (l.resize) {
    const apb = bs / 4;
    const iblock = new Uint8Array(60);
    setU32(iblock, 13 * 4, l.resize.dind);
    specs.set(RESIZE_INO, { mode: S_IFREG | 0o600, links: 1, size: (apb * apb + apb + 12) * bs, blocks: l.resize.allocatedBlocks, flags: 0, iblock });
  }
  if (l.journal) specs.set(JOURNAL_INO, fileInode(l, l.journal, S_IFREG | 0o600, 1, l.journal.blocks * bs));
  if (l.orphan) specs.set(l.orphan.ino, fileInode(l, l.orphan, S_IFREG | 0o600, 1, l.orphan.blocks * bs));
  const csum32 = hasFeature(l.features, "metadata_csum");
  // Group by inode table block: write each block that holds a written inode.
  const blocks = new Map<number, Uint8Array>();
  for (let ino = 1; ino <= l.lastIno; ino++) {
    const spec = specs.get(ino);
    if (spec === undefined && !(csum32 && ino < 11)) continue; // reserved inodes get checksums with metadata_csum
    const g = Math.floor((ino - 1) / perGroup);
    const idx = (ino - 1) % perGroup;
    const blk = l.groups[g].inodeTable + Math.floor((idx * isz) / bs);
    let buf = blocks.get(blk);
    if (!buf) blocks.set(blk, (buf = new Uint8Array(bs)));
    buf.set(inodeBytes(l, csum, ino, spec ?? null), (idx * isz) % bs);
  }
  // Every block of the used part is written whole, so old content there is cleared too.
  for (let g = 0; g < l.groupCount; g++) {
    const first = g * perGroup + 1;
    const used = Math.max(0, Math.min(l.lastIno - first + 1, perGroup));
    for (let i = 0; i < Math.ceil((used * isz) / bs); i++) {
      const blk = l.groups[g].inodeTable + i;
      w.block(blk, blocks.get(blk) ?? new Uint8Array(bs));
    }
  }
}

/** The resize inode's blocks: the double indirect block and, in each primary reserved GDT block, its backups. */
function writeResizeBlocks(w: Writer, l: Layout): void {
  const bs = l.blockSize;
  const apb = bs / 4;
  const sbBlk = l.firstDataBlock === 0 && bs === 1024 ? 1 : l.firstDataBlock;
  const dind = new Uint8Array(bs);
  const backups = backupGroups(l.features, l.groupCount);
  for (let r = 0; r < l.reservedGdtBlocks; r++) {
    const gdtBlk = sbBlk + 1 + l.descBlocks + r;
    setU32(dind, ((l.descBlocks + r) % apb) * 4, gdtBlk);
    const list = new Uint8Array(bs);
    backups.forEach((g, i) => setU32(list, i * 4, gdtBlk + g * l.blocksPerGroup));
    w.block(gdtBlk, list);
  }
  w.block(l.resize!.dind, dind);
}

/** Indirect blocks of a block-mapped journal (no extent feature). */
function writeIndirect(w: Writer, l: Layout, f: FileLayout): void {
  const meta = f.indirect;
  if (!meta?.length) return;
  const bs = l.blockSize;
  const apb = bs / 4;
  const pblkOf = (lblk: number): number => {
    for (const e of f.extents) if (lblk >= e.lblk && lblk < e.lblk + e.len) return e.pblk + (lblk - e.lblk);
    return 0;
  };
  const total = f.extents.reduce((n, e) => Math.max(n, e.lblk + e.len), 0);
  const ind = (blk: number, firstLblk: number): void => {
    const b = new Uint8Array(bs);
    for (let i = 0; i < apb && firstLblk + i < total; i++) setU32(b, i * 4, pblkOf(firstLblk + i));
    w.block(blk, b);
  };
  ind(meta[0], 12);
  if (meta.length > 1) {
    const d = new Uint8Array(bs);
    for (let i = 2; i < meta.length; i++) {
      setU32(d, (i - 2) * 4, meta[i]);
      ind(meta[i], 12 + apb + (i - 2) * apb);
    }
    w.block(meta[1], d);
  }
}
