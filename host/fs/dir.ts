// Directories: iterate entries (linear blocks, htree leaves, inline dirs) and
// look names up through the htree index when the directory has one.

import { corrupted } from "../errors.js";
import { u16, u32, u8 } from "../format/bytes.js";
import { dirHash, DX_HASH_TEA } from "../format/dirhash.js";
import { DX_ROOT_INFO_OFFSET, dxRootInfo, DIRENT_TAIL_SIZE, hasDirentTail, recLenAt, dxEntries, type DxEntry } from "../format/dirent.js";
import { COMPAT, INCOMPAT } from "../format/features.js";
import { Inode, INODE_FLAGS } from "../format/inode.js";
import { SB_FLAGS } from "../format/superblock.js";
import { casefoldKey } from "./casefold.js";
import { inlineDirRegions } from "./inline.js";
import { MapKind } from "./mapping.js";
import type { Ext4 } from "./super.js";

export interface DirEntry {
  ino: number;
  name: Uint8Array;
  fileType: number;
}

const MAX_DIR_BLOCKS = 1 << 26;
/** A linear directory above this many blocks is read whole on its first lookup (see dcache.ts). */
const INDEX_ON_LOOKUP_BLOCKS = 2;

/** Directory blocks (and inline regions) parsed since load: what a walk costs, for tests and benchmarks. */
export const dirStats = { blocksParsed: 0 };

/** Parses one directory block (or inline region) of `len` bytes at b[off]. */
export function parseDirBlock(
  fs: Ext4, dir: Inode, b: Uint8Array, off: number, len: number, blockNo: number | undefined, out: DirEntry[] | null,
  match?: Uint8Array,
): number {
  dirStats.blocksParsed++;
  const where = { ino: dir.ino, block: blockNo };
  const sb = fs.sb;
  const fileType = (sb.featureIncompat & INCOMPAT.FILETYPE) !== 0;
  let p = off;
  const end = off + len;
  while (p < end) {
    if (p + 8 > end) throw corrupted(`directory entry header runs past the block at offset ${p - off}`, where);
    const ino = u32(b, p);
    const recLen = len === sb.blockSize ? recLenAt(b, p, sb.blockSize) : u16(b, p + 4);
    const nameLen = u8(b, p + 6);
    if (recLen < 8 || recLen % 4 !== 0) throw corrupted(`directory entry rec_len ${recLen} is invalid at offset ${p - off}`, where);
    if (p + recLen > end) throw corrupted(`directory entry rec_len ${recLen} runs past the block at offset ${p - off}`, where);
    if (ino !== 0) {
      if (8 + nameLen > recLen) throw corrupted(`directory entry name (${nameLen} bytes) longer than its record at offset ${p - off}`, where);
      if (ino > sb.inodesCount) throw corrupted(`directory entry points to inode ${ino} beyond the inode count`, where);
      if (nameLen === 0) throw corrupted(`directory entry with an empty name at offset ${p - off}`, where);
      const name = b.subarray(p + 8, p + 8 + nameLen);
      if (match) {
        if (bytesEqual(name, match)) return ino;
      } else if (out) {
        // No path can name such an entry, and a caller joining it to a path would reach another file.
        // (Encrypted names are ciphertext: any byte goes.)
        if (!(dir.flags & INODE_FLAGS.ENCRYPT) && (name.includes(0x2f) || name.includes(0))) throw corrupted(`directory entry name contains '/' or NUL at offset ${p - off}`, where);
        out.push({ ino, name: name.slice(), fileType: fileType ? u8(b, p + 7) : 0 });
      }
    }
    p += recLen;
  }
  return 0;
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Number of blocks the directory spans. */
export function dirBlocks(fs: Ext4, dir: Inode): number {
  const n = Math.ceil(dir.size / fs.sb.blockSize);
  if (n > MAX_DIR_BLOCKS) throw corrupted(`directory size ${dir.size} is implausible`, { ino: dir.ino });
  return n;
}

/** Reads directory block `lblk`, verifying its checksum; null for a hole. */
function readDirBlock(fs: Ext4, dir: Inode, lblk: number): { b: Uint8Array; pblk: number } | null {
  const m = fs.mapBlocks(dir, lblk, 1);
  if (m.kind !== MapKind.Mapped) return null;
  return { b: fs.bcache.read(m.pblk, "directory block"), pblk: m.pblk };
}

/** Further blocks of the hole at `lblk` (below n): scans skip a hole in one step, not block by block. */
function restOfHole(fs: Ext4, dir: Inode, lblk: number, n: number): number {
  return fs.mapBlocks(dir, lblk, n - lblk).len - 1;
}

/** Is this block an htree interior node (a fake empty dirent spanning the block)? */
export function isDxNode(fs: Ext4, b: Uint8Array): boolean {
  return u32(b, 0) === 0 && recLenAt(b, 0, fs.sb.blockSize) === fs.sb.blockSize && u8(b, 6) === 0;
}

export function isIndexed(fs: Ext4, dir: Inode): boolean {
  return (dir.flags & INODE_FLAGS.INDEX) !== 0 && (fs.sb.featureCompat & COMPAT.DIR_INDEX) !== 0;
}

export function isCasefolded(fs: Ext4, dir: Inode): boolean {
  return (dir.flags & INODE_FLAGS.CASEFOLD) !== 0 && (fs.sb.featureIncompat & INCOMPAT.CASEFOLD) !== 0;
}

export function verifyLeaf(fs: Ext4, dir: Inode, b: Uint8Array, pblk: number): number {
  if (!fs.metadataCsum) return fs.sb.blockSize;
  const bs = fs.sb.blockSize;
  if (!hasDirentTail(b, bs)) {
    if (fs.verifyChecksums) throw corrupted("directory block has no checksum tail", { ino: dir.ino, block: pblk });
    return bs;
  }
  if (fs.verifyChecksums && !fs.verified.has(dir.ino, pblk)) {
    if (u32(b, bs - 4) !== fs.csum.dirBlock(fs.inodeSeed(dir), b)) throw corrupted("directory block checksum mismatch", { ino: dir.ino, block: pblk });
    fs.verified.add(dir.ino, pblk);
  }
  return bs - DIRENT_TAIL_SIZE;
}

export function verifyDxNode(fs: Ext4, dir: Inode, b: Uint8Array, pblk: number, countOffset: number): void {
  if (!fs.metadataCsum || !fs.verifyChecksums || fs.verified.has(dir.ino, pblk)) return;
  const limit = u16(b, countOffset);
  const count = u16(b, countOffset + 2);
  const tail = countOffset + limit * 8;
  // ext4_dx_csum_verify sums `count` entries without checking them against `limit` (dx_probe does that
  // later, as a bad index); a count running off the block is past anything it could sum.
  if (tail + 8 > fs.sb.blockSize || countOffset + count * 8 > fs.sb.blockSize) throw corrupted("htree node has no room for its checksum", { ino: dir.ino, block: pblk });
  if (u32(b, tail + 4) !== fs.csum.dxNode(fs.inodeSeed(dir), b, countOffset, count, tail)) {
    throw corrupted("htree node checksum mismatch", { ino: dir.ino, block: pblk });
  }
  fs.verified.add(dir.ino, pblk);
}

/**
 * All entries of a directory, "." and ".." included, in on-disk order. The
 * names of a linear directory are remembered (dcache), so looking each of
 * them up after costs no further scan. Not in casefolded directories (a name
 * absent byte for byte may still match after folding), nor in indexed ones:
 * their lookups go by hash, cost a few blocks, and must give the answer the
 * index gives whether or not the directory was listed first (a damaged index
 * can miss a name a listing shows, as in the kernel).
 */
export function readDir(fs: Ext4, dir: Inode): DirEntry[] {
  const out = readDirUncached(fs, dir);
  if (!isCasefolded(fs, dir) && !isIndexed(fs, dir)) fs.dcache.setDir(dir.ino, out);
  return out;
}

function readDirUncached(fs: Ext4, dir: Inode): DirEntry[] {
  const out: DirEntry[] = [];
  if (dir.flags & INODE_FLAGS.INLINE_DATA) {
    const parent = u32(dir.iBlock, 0);
    out.push({ ino: dir.ino, name: DOT, fileType: 2 }, { ino: parent, name: DOTDOT, fileType: 2 });
    for (const r of inlineDirRegions(fs, dir)) parseDirBlock(fs, dir, r.bytes, r.offset, r.length, undefined, out);
    return out;
  }
  const indexed = isIndexed(fs, dir);
  const n = dirBlocks(fs, dir);
  for (let lblk = 0; lblk < n; lblk++) {
    const blk = readDirBlock(fs, dir, lblk);
    if (!blk) { lblk += restOfHole(fs, dir, lblk, n); continue; }
    if (indexed && lblk === 0) {
      // An unusable index does not stop a listing: the leaves are read in order anyway.
      try { verifyDxRoot(fs, dir, blk.b, blk.pblk); } catch (e) { if (!badIndex.has(e as Error)) throw e; }
      // "." and ".." lead the root block; the rest of it is index.
      parseDirBlock(fs, dir, blk.b, 0, 12, blk.pblk, out);
      const dotdotIno = u32(blk.b, 12);
      if (dotdotIno > fs.sb.inodesCount) throw corrupted("'..' points beyond the inode count", { ino: dir.ino, block: blk.pblk });
      out.push({ ino: dotdotIno, name: DOTDOT, fileType: u8(blk.b, 19) });
      continue;
    }
    if (indexed && isDxNode(fs, blk.b)) {
      verifyDxNode(fs, dir, blk.b, blk.pblk, 8);
      continue;
    }
    const usable = verifyLeaf(fs, dir, blk.b, blk.pblk);
    parseDirBlock(fs, dir, blk.b, 0, usable, blk.pblk, out);
  }
  return out;
}

const DOT = Uint8Array.of(0x2e);
const DOTDOT = Uint8Array.of(0x2e, 0x2e);

/**
 * dx_probe's ERR_BAD_DX_DIR: an index the kernel will not use (unknown hash,
 * too deep, bad count or limit) while its blocks passed their checksums. The
 * leaves can still be fine, so lookups and listings fall back to a linear scan.
 */
const badIndex = new WeakSet<Error>();
/** Is `e` dx_probe's ERR_BAD_DX_DIR (an index to ignore, not a failed block)? */
export function isBadIndex(e: unknown): boolean { return badIndex.has(e as Error); }
export function badIndexError(message: string, where: { ino: number; block?: number }): Error {
  const e = corrupted(message, where);
  badIndex.add(e);
  return e;
}

export function verifyDxRoot(fs: Ext4, dir: Inode, b: Uint8Array, pblk: number): { levels: number; hashVersion: number; countOffset: number } {
  const info = dxRootInfo(b);
  const where = { ino: dir.ino, block: pblk };
  // With checksums, a root whose layout hides the checksum is a checksum failure (ext4_dx_csum_verify).
  const layout = fs.metadataCsum && fs.verifyChecksums ? corrupted : badIndexError;
  if (u32(b, DX_ROOT_INFO_OFFSET) !== 0) throw layout("htree root reserved field is not zero", where);
  if (info.infoLength !== 8) throw layout(`htree root info length ${info.infoLength}`, where);
  const countOffset = DX_ROOT_INFO_OFFSET + info.infoLength;
  verifyDxNode(fs, dir, b, pblk, countOffset);
  const maxLevels = fs.sb.featureIncompat & INCOMPAT.LARGEDIR ? 3 : 2;
  if (info.flags & 1) throw badIndexError(`htree root has unimplemented hash flags 0x${info.flags.toString(16)}`, where);
  if (info.indirectLevels >= maxLevels) throw badIndexError(`htree depth ${info.indirectLevels + 1} too large`, where);
  const limit = u16(b, countOffset);
  if (limit !== dxRootLimit(fs, info.infoLength)) throw badIndexError(`htree root limit ${limit}, expected ${dxRootLimit(fs, info.infoLength)}`, where);
  return { levels: info.indirectLevels, hashVersion: info.hashVersion, countOffset };
}

/** dx_root_limit: entries that fit the root after "." and "..", the root info and (metadata_csum) the dx tail. */
export function dxRootLimit(fs: Ext4, infoLength: number): number {
  return Math.floor((fs.sb.blockSize - 12 - 12 - infoLength - (fs.metadataCsum ? 8 : 0)) / 8);
}

/** dx_node_limit: entries that fit an interior node after its fake dirent and (metadata_csum) the dx tail. */
export function dxNodeLimit(fs: Ext4): number {
  return Math.floor((fs.sb.blockSize - 8 - (fs.metadataCsum ? 8 : 0)) / 8);
}

/** Looks `name` up in a directory through the dentry cache; returns the inode number or 0. */
export function lookup(fs: Ext4, dir: Inode, name: Uint8Array): number {
  const cached = fs.dcache.get(dir.ino, name);
  if (cached !== undefined) return cached;
  const ino = lookupUncached(fs, dir, name);
  fs.dcache.set(dir.ino, name, ino);
  return ino;
}

function lookupUncached(fs: Ext4, dir: Inode, name: Uint8Array): number {
  if (dir.flags & INODE_FLAGS.INLINE_DATA) {
    if (name.length === 1 && name[0] === 0x2e) return dir.ino;
    if (name.length === 2 && name[0] === 0x2e && name[1] === 0x2e) return u32(dir.iBlock, 0);
    for (const r of inlineDirRegions(fs, dir)) {
      const ino = parseDirBlock(fs, dir, r.bytes, r.offset, r.length, undefined, null, name);
      if (ino) return ino;
    }
    return 0;
  }
  if (isCasefolded(fs, dir)) return casefoldLookup(fs, dir, name);
  // Encrypted directories hash the ciphertext: scan them linearly.
  if (isIndexed(fs, dir) && !(dir.flags & (INODE_FLAGS.CASEFOLD | INODE_FLAGS.ENCRYPT))) {
    try {
      return dxLookup(fs, dir, name);
    } catch (e) {
      // ext4_find_entry: on ERR_BAD_DX_DIR, search the old-fashioned way.
      if (!badIndex.has(e as Error)) throw e;
    }
  }
  // A big linear directory is read whole once, if it can be kept; later lookups
  // are answered from memory. (An indexed one whose index is bad is searched
  // linearly, but never kept whole: see readDir.)
  if (!isIndexed(fs, dir) && dirBlocks(fs, dir) > INDEX_ON_LOOKUP_BLOCKS && !fs.dcache.isScanOnly(dir.ino)) {
    try {
      readDir(fs, dir);
    } catch {
      // A bad block further on must not hide a name before it: scan, as before.
      fs.dcache.markScanOnly(dir.ino);
    }
    if (fs.dcache.hasDir(dir.ino)) return fs.dcache.get(dir.ino, name) ?? 0;
  }
  return linearLookup(fs, dir, name);
}

/** A casefolded directory: an exact match first, else the first name equal after folding. */
function casefoldLookup(fs: Ext4, dir: Inode, name: Uint8Array): number {
  const exact = linearLookup(fs, dir, name);
  if (exact) return exact;
  const want = casefoldKey(name);
  if (want === null) return 0;
  for (const e of readDir(fs, dir)) if (casefoldKey(e.name) === want) return e.ino;
  return 0;
}

/**
 * Scans the blocks for `name`, starting where the previous lookup here found
 * its name and wrapping round (the kernel's i_dir_start_lookup).
 */
function linearLookup(fs: Ext4, dir: Inode, name: Uint8Array): number {
  const n = dirBlocks(fs, dir);
  const start = Math.min(fs.dcache.startHint(dir.ino), n);
  const ino = linearScan(fs, dir, name, start, n) || linearScan(fs, dir, name, 0, start);
  return ino;
}

function linearScan(fs: Ext4, dir: Inode, name: Uint8Array, from: number, n: number): number {
  const indexed = isIndexed(fs, dir);
  for (let lblk = from; lblk < n; lblk++) {
    const blk = readDirBlock(fs, dir, lblk);
    if (!blk) { lblk += restOfHole(fs, dir, lblk, n); continue; }
    if (indexed && lblk === 0) {
      const ino = parseDirBlock(fs, dir, blk.b, 0, 12, blk.pblk, null, name);
      if (ino) return ino;
      if (name.length === 2 && name[0] === 0x2e && name[1] === 0x2e) return u32(blk.b, 12);
      continue;
    }
    if (indexed && isDxNode(fs, blk.b)) continue;
    const usable = verifyLeaf(fs, dir, blk.b, blk.pblk);
    const ino = parseDirBlock(fs, dir, blk.b, 0, usable, blk.pblk, null, name);
    if (ino) {
      fs.dcache.setStartHint(dir.ino, lblk);
      return ino;
    }
  }
  return 0;
}

interface Frame { entries: DxEntry[]; at: number }

function dxLookup(fs: Ext4, dir: Inode, name: Uint8Array): number {
  if (name.length === 1 && name[0] === 0x2e) return dir.ino;
  const rootBlk = readDirBlock(fs, dir, 0);
  if (!rootBlk) throw corrupted("htree directory has a hole at its root", { ino: dir.ino });
  if (name.length === 2 && name[0] === 0x2e && name[1] === 0x2e) return u32(rootBlk.b, 12);
  const root = verifyDxRoot(fs, dir, rootBlk.b, rootBlk.pblk);
  let version = root.hashVersion;
  // dx_probe: legacy, half_md4 and tea, or siphash where the hash is in the dirent (casefolded and
  // encrypted, never looked up here); anything else is a bad index, searched linearly.
  if (version > DX_HASH_TEA) throw badIndexError(`htree hash version ${version} unusable here`, { ino: dir.ino, block: rootBlk.pblk });
  if (version <= DX_HASH_TEA && fs.sb.flags & SB_FLAGS.UNSIGNED_HASH) version += 3;
  const seed = fs.sb.hashSeed.some((w) => w !== 0) ? fs.sb.hashSeed : null;
  const { major } = dirHash(name, version, seed);
  const nblocks = dirBlocks(fs, dir);

  // Descend from the root, remembering the path for collision continuation.
  const frames: Frame[] = [];
  let node = rootBlk.b.slice();
  let nodePblk = rootBlk.pblk;
  let countOffset = root.countOffset;
  for (let level = 0; level <= root.levels; level++) {
    const entries = readDxEntries(fs, dir, node, nodePblk, countOffset, nblocks);
    const at = searchDx(entries, major);
    frames.push({ entries, at });
    // dx_probe: an entry naming a block already on the path (the root is block 0) is a cycle.
    if (entries[at].block === 0 || frames.slice(0, -1).some((f) => f.entries[f.at].block === entries[at].block)) {
      throw badIndexError(`htree cycle: block ${entries[at].block} points back up the tree`, { ino: dir.ino, block: nodePblk });
    }
    if (level === root.levels) break;
    const child = readDirBlock(fs, dir, entries[at].block);
    if (!child) throw corrupted("htree index points at a hole", { ino: dir.ino });
    if (!isDxNode(fs, child.b)) throw corrupted("htree interior node expected", { ino: dir.ino, block: child.pblk });
    verifyDxNode(fs, dir, child.b, child.pblk, 8);
    if (u16(child.b, 8) !== dxNodeLimit(fs)) throw badIndexError(`htree node limit ${u16(child.b, 8)}, expected ${dxNodeLimit(fs)}`, { ino: dir.ino, block: child.pblk });
    node = child.b.slice();
    nodePblk = child.pblk;
    countOffset = 8;
  }
  // Scan the leaf; on a miss, follow continuation leaves whose first hash carries the collision bit.
  for (let guard = 0; guard < nblocks + 1; guard++) {
    const leafNo = frames[frames.length - 1].entries[frames[frames.length - 1].at].block;
    const leaf = readDirBlock(fs, dir, leafNo);
    if (leaf) {
      const usable = verifyLeaf(fs, dir, leaf.b, leaf.pblk);
      const ino = parseDirBlock(fs, dir, leaf.b, 0, usable, leaf.pblk, null, name);
      if (ino) return ino;
    }
    if (!advance(fs, dir, frames, major, nblocks)) return 0;
  }
  throw corrupted("htree continuation chain does not end", { ino: dir.ino });
}

/** Moves to the next leaf if it continues the same hash (ext4_htree_next_block). */
function advance(fs: Ext4, dir: Inode, frames: Frame[], major: number, nblocks: number): boolean {
  let level = frames.length - 1;
  while (level >= 0 && frames[level].at + 1 >= frames[level].entries.length) level--;
  if (level < 0) return false;
  frames[level].at++;
  const nextHash = frames[level].entries[frames[level].at].hash;
  // The next leaf continues our hash only if its first hash equals ours (collision bit aside).
  if ((nextHash & ~1) >>> 0 !== major >>> 0) return false;
  // Re-descend along the leftmost path below the advanced entry.
  for (let l = level + 1; l < frames.length; l++) {
    const blk = readDirBlock(fs, dir, frames[l - 1].entries[frames[l - 1].at].block);
    if (!blk || !isDxNode(fs, blk.b)) throw corrupted("htree interior node expected", { ino: dir.ino });
    verifyDxNode(fs, dir, blk.b, blk.pblk, 8);
    frames[l] = { entries: readDxEntries(fs, dir, blk.b.slice(), blk.pblk, 8, nblocks), at: 0 };
  }
  return true;
}

/** An htree node's entries (decoded by format/dirent), checked against the directory. */
export function readDxEntries(fs: Ext4, dir: Inode, b: Uint8Array, pblk: number, countOffset: number, nblocks: number): DxEntry[] {
  const where = { ino: dir.ino, block: pblk };
  const limit = u16(b, countOffset);
  const count = u16(b, countOffset + 2);
  if (count === 0 || count > limit || countOffset + count * 8 > fs.sb.blockSize) throw badIndexError(`htree node count ${count} / limit ${limit} invalid`, where);
  const { entries } = dxEntries(b, countOffset);
  for (let i = 0; i < entries.length; i++) {
    if (entries[i].block >= nblocks) throw corrupted(`htree entry points to block ${entries[i].block} beyond the directory`, where);
    if (i > 1 && entries[i].hash < entries[i - 1].hash) throw badIndexError("htree hashes out of order", where);
  }
  return entries;
}

/** Index of the last entry whose hash <= target (entry 0 covers everything below entry 1). */
export function searchDx(entries: { hash: number }[], target: number): number {
  let lo = 1;
  let hi = entries.length - 1;
  let found = 0;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    if (entries[mid].hash >>> 0 <= target >>> 0) { found = mid; lo = mid + 1; } else hi = mid - 1;
  }
  return found;
}
