// Extent-mapped files: the extent path (root to leaf, a buffer head at every
// level, each node checked), shared by lookup and modification
// (extents-write.ts), with binary search of each node in wasm over the node's
// bytes in the folio arena. An in-core inode's lookups cache the leaf they
// read in its extent status tree, which every change updates for the range it
// changed; a plain decoded inode (tools, tests) keeps its last leaf here.

import { corrupted } from "../errors.js";
import { extentHeader, EXTENT_MAGIC, extentTailOffset, indexAt, LeafExtent, leafAt } from "../format/extent.js";
import { u16, u32 } from "../format/bytes.js";
import type { Inode } from "../format/inode.js";
import { BH, type BufferHead } from "../cache/buffer-head.js";
import { ES, EXT_MAX_BLOCKS } from "./extents-status.js";
import { Ext4Inode } from "./inode.js";
import { BlockMapping, MapKind } from "./mapping.js";
import type { Ext4 } from "./super.js";

const MAX_DEPTH = 5;
const MAX_LBLK = 0xffffffff;

/** One decoded leaf and the logical range [start, end) it is authoritative for. */
interface LeafCache { start: number; end: number; extents: LeafExtent[] }

const leafCache = new WeakMap<Inode, LeafCache>();

export function extentMapBlocks(fs: Ext4, inode: Inode, lblk: number, maxLen: number): BlockMapping {
  if (inode instanceof Ext4Inode) {
    // The in-core inode's cache is its extent status tree: the whole leaf goes there (ext4_cache_extents), no second copy here.
    const leaf = loadLeaf(fs, inode, lblk);
    const m = answer(fs, inode, leaf, lblk, maxLen);
    cacheLeaf(inode, leaf, m);
    return m;
  }
  let leaf = leafCache.get(inode);
  if (!leaf || lblk < leaf.start || lblk >= leaf.end) {
    leaf = loadLeaf(fs, inode, lblk);
    leafCache.set(inode, leaf);
  }
  return answer(fs, inode, leaf, lblk, maxLen);
}

/**
 * ext4_cache_extents: every extent of a leaf just read, and the holes between
 * them, recorded in the status tree where nothing is known yet (cached, so
 * `seq` stays), with the hole `m` answered if it was one.
 */
function cacheLeaf(inode: Ext4Inode, leaf: LeafCache, m: BlockMapping): void {
  const es = inode.es;
  // A leaf that would take a large share of the mount's cap (at most 340 extents, a 4 KiB leaf; the cap is 1024 or
  // more) caches only the answer, so the shrinker never drops a leaf as it is being read.
  if (leaf.extents.length * 16 > es.cap) {
    if (m.lblk + m.len <= EXT_MAX_BLOCKS) es.cache(m.lblk, m.len, m.pblk, m.kind === MapKind.Mapped ? ES.WRITTEN : m.kind === MapKind.Unwritten ? ES.UNWRITTEN : ES.HOLE);
    return;
  }
  let prev = -1;
  for (const e of leaf.extents) {
    if (prev >= 0 && e.lblk > prev) es.cache(prev, e.lblk - prev, 0, ES.HOLE);
    es.cache(e.lblk, e.len, e.pblk, e.unwritten ? ES.UNWRITTEN : ES.WRITTEN);
    prev = e.lblk + e.len;
  }
  if (m.kind === MapKind.Hole && m.lblk + m.len <= EXT_MAX_BLOCKS) es.cache(m.lblk, m.len, 0, ES.HOLE);
}

// ---- the mapping's sequence: the extent status tree's seq ----

/** Inodes without an extent status tree (plain decoded inodes, in tests and tools) count here. */
const seqs = new WeakMap<Inode, number>();

/** A value that changes whenever the inode's block mapping changes (i_es_seq: the iomap validity cookie). */
export function extentSeq(inode: Inode): number {
  return inode instanceof Ext4Inode ? inode.es.seq : (seqs.get(inode) ?? 0);
}

/**
 * The whole drop: forget the cached leaf and everything the extent status
 * tree cached from disk, which moves the sequence on; delayed extents stay.
 * No change site needs it now (they tell their range: extentsChanged); kept
 * for callers that changed the map behind the tree's back, and as
 * bench/es-update.mjs's "before".
 */
export function bumpExtentSeq(inode: Inode): number {
  leafCache.delete(inode);
  if (inode instanceof Ext4Inode) {
    const es = inode.es;
    es.shrink(true);
    es.invalidate();
    return es.seq;
  }
  const s = (seqs.get(inode) ?? 0) + 1;
  seqs.set(inode, s);
  return s;
}

/**
 * Logical blocks [lblk, lblk+len) now map as `status` says (ES.WRITTEN or
 * ES.UNWRITTEN from `pblk`, ES.HOLE): the extent status tree takes that range
 * (its delayed extents kept), as the kernel's ext4_es_insert_extent after an
 * allocation or conversion, and the sequence moves on. Every change site
 * calls this (or extentTreeChanged) instead of dropping the whole cache.
 */
export function extentsChanged(inode: Inode, lblk: number, len: number, pblk: number, status: number): number {
  leafCache.delete(inode);
  if (!(inode instanceof Ext4Inode)) return bumpExtentSeq(inode);
  const es = inode.es;
  const end = Math.min(lblk + len, EXT_MAX_BLOCKS);
  if (end > lblk) es.diskChanged(lblk, end - lblk, pblk, status);
  else es.treeChanged();
  return es.seq;
}

/** The on-disk tree changed shape, the mapping did not (split, depth change): the sequence moves on, the cache stays. */
export function extentTreeChanged(inode: Inode): number {
  leafCache.delete(inode);
  if (!(inode instanceof Ext4Inode)) return bumpExtentSeq(inode);
  inode.es.treeChanged();
  return inode.es.seq;
}

function answer(fs: Ext4, inode: Inode, leaf: LeafCache, lblk: number, maxLen: number): BlockMapping {
  const ex = leaf.extents;
  let lo = 0;
  let hi = ex.length - 1;
  let found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    if (ex[mid].lblk <= lblk) { found = mid; lo = mid + 1; } else hi = mid - 1;
  }
  if (found >= 0) {
    const e = ex[found];
    if (lblk < e.lblk + e.len) {
      const off = lblk - e.lblk;
      return { lblk, len: Math.min(e.len - off, maxLen), pblk: e.pblk + off, kind: e.unwritten ? MapKind.Unwritten : MapKind.Mapped };
    }
  }
  const next = found + 1 < ex.length ? ex[found + 1].lblk : leaf.end;
  return { lblk, len: Math.max(1, Math.min(next - lblk, maxLen)), pblk: 0, kind: MapKind.Hole };
}

// ---- the extent path (ext4_find_extent): one walk for lookup and modification ----

/** One level of a path from the root (index 0) down to a leaf. */
export interface ExtPathLevel {
  /** The node's own depth (0: leaf). */
  depth: number;
  /** The block holding the node; undefined for the root in i_block. */
  pblk: number | undefined;
  /** The node's buffer, referenced until releasePath (none for the root). */
  bh: BufferHead | undefined;
  /**
   * The entry the walk went through: the last whose first block is <= the
   * block looked up. Index nodes: at least 0 (the walk descends into the first
   * child for a block before every entry, as p_idx does). Leaves: -1 when the
   * block is before every extent or the leaf is empty.
   */
  pos: number;
}
export type ExtPath = ExtPathLevel[];

/** The bytes of a path level's node (i_block for the root). A view: take it again after cache calls. */
export function pathNode(inode: Inode, level: ExtPathLevel): Uint8Array {
  return level.bh ? level.bh.data : inode.iBlock;
}

/**
 * ext4_find_extent: root to leaf towards `lblk`, every node checked as
 * __ext4_ext_check does (header, order, entries, the first entry against its
 * index entry) and extent blocks checksum-verified. `leafOut` receives the
 * leaf's extents, decoded. The caller releases the path (releasePath) when
 * done; on an error the walk releases what it took.
 */
export function findExtent(fs: Ext4, inode: Inode, lblk: number, leafOut?: LeafExtent[]): ExtPath {
  const path: ExtPath = [];
  try {
    const root = inode.iBlock;
    validateNode(root, 60, inode, undefined, -1);
    let depth = extentHeader(root).depth;
    let node: Uint8Array = root;
    let level: ExtPathLevel = { depth, pblk: undefined, bh: undefined, pos: -1 };
    path.push(level);
    for (let n = 0; n <= MAX_DEPTH; n++) {
      const h = extentHeader(node);
      const ptr = fs.stage(node);
      // buffer_verified: a block checked since it was read (and only changed by us since) is not checked again.
      const checked = level.bh !== undefined && level.bh.test(BH.VERIFIED);
      if (!checked) checkSorted(fs, ptr, inode, level.pblk);
      const i = fs.wasm.x.extentSearch(ptr, lblk);
      if (h.depth === 0) {
        let prev: LeafExtent | undefined;
        for (let k = 0; k < h.entries && (!checked || leafOut); k++) {
          const e = leafAt(node, k);
          if (!checked) checkLeafEntry(fs, e, prev, inode, level.pblk);
          leafOut?.push(e);
          prev = e;
        }
        level.bh?.set(BH.VERIFIED);
        level.pos = i;
        return path;
      }
      // Index node (never empty, validateNode saw to it): the kernel checks every entry's block
      // before it uses any, then descends into entry i (or the first, for a block before every entry).
      for (let j = 0; j < h.entries && !checked; j++) {
        const b = indexAt(node, j).leaf;
        if (b <= fs.sb.firstDataBlock || b >= fs.sb.blocksCount) throw corrupted(`extent index entry ${j} points outside the filesystem (block ${b})`, { ino: inode.ino, block: level.pblk });
        if (inSystemZone(fs, inode, b, 1)) throw corrupted(`extent index entry ${j} points into filesystem metadata (block ${b})`, { ino: inode.ino, block: level.pblk });
      }
      level.bh?.set(BH.VERIFIED);
      level.pos = i < 0 ? 0 : i;
      const idx = indexAt(node, level.pos);
      const bh = fs.bcache.bread(idx.leaf, "extent tree block");
      level = { depth: depth - 1, pblk: idx.leaf, bh, pos: -1 };
      path.push(level);
      const child = bh.data;
      validateNode(child, fs.sb.blockSize, inode, idx.leaf, depth - 1);
      verifyExtentBlock(fs, inode, child, idx.leaf);
      // ext4_valid_extent_entries: a child's first entry starts where its parent's index entry says.
      const first = extentHeader(child).entries > 0 ? u32(child, 12) : idx.lblk;
      if (first !== idx.lblk) throw corrupted(`extent node starts at logical block ${first}, its index entry says ${idx.lblk}`, { ino: inode.ino, block: idx.leaf });
      node = child;
      depth--;
    }
    throw corrupted("extent tree too deep", { ino: inode.ino });
  } catch (e) {
    releasePath(fs, path);
    throw e;
  }
}

/** Drops the path's buffer references. */
export function releasePath(fs: Ext4, path: ExtPath): void {
  for (const level of path) {
    if (level.bh) {
      fs.bcache.brelse(level.bh);
      level.bh = undefined;
    }
  }
}

/** The leaf for `lblk` decoded, with the logical range its parents say it covers. */
function loadLeaf(fs: Ext4, inode: Inode, lblk: number): LeafCache {
  const extents: LeafExtent[] = [];
  const path = findExtent(fs, inode, lblk, extents);
  try {
    let start = 0;
    let end = MAX_LBLK + 1;
    for (const level of path) {
      if (level.depth === 0) break;
      const node = pathNode(inode, level);
      const idx = indexAt(node, level.pos);
      if (idx.lblk <= lblk) start = Math.max(start, idx.lblk);
      if (level.pos + 1 < extentHeader(node).entries) end = Math.min(end, indexAt(node, level.pos + 1).lblk);
    }
    return { start, end, extents };
  } finally {
    releasePath(fs, path);
  }
}

function validateNode(b: Uint8Array, nodeBytes: number, inode: Inode, pblk: number | undefined, expectDepth: number): void {
  const where = { ino: inode.ino, block: pblk };
  if (u16(b, 0) !== EXTENT_MAGIC) throw corrupted("bad extent header magic", where);
  const h = extentHeader(b);
  if (h.max === 0 || h.entries > h.max || 12 + h.max * 12 > nodeBytes) throw corrupted(`bad extent header (entries ${h.entries}, max ${h.max})`, where);
  if (expectDepth >= 0 && h.depth !== expectDepth) throw corrupted(`extent node depth ${h.depth}, expected ${expectDepth}`, where);
  if (h.depth > MAX_DEPTH) throw corrupted(`extent tree depth ${h.depth} too large`, where);
  // __ext4_ext_check: only a leaf may be empty (an index node with no entries maps nothing, it is damage).
  if (h.entries === 0 && h.depth > 0) throw corrupted("extent index node has no entries", where);
}

function checkSorted(fs: Ext4, ptr: number, inode: Inode, pblk: number | undefined): void {
  const nodeBytes = pblk === undefined ? 60 : fs.sb.blockSize;
  if (fs.wasm.x.extentCheckHeader(ptr, nodeBytes, -1) < 0) throw corrupted("extent node entries out of order", { ino: inode.ino, block: pblk });
}

function checkLeafEntry(fs: Ext4, e: LeafExtent, prev: LeafExtent | undefined, inode: Inode, pblk: number | undefined): void {
  const where = { ino: inode.ino, block: pblk };
  if (e.len === 0) throw corrupted(`zero-length extent at logical block ${e.lblk}`, where);
  if (e.lblk + e.len - 1 > MAX_LBLK) throw corrupted(`extent at ${e.lblk} runs past the largest logical block`, where);
  // ext4_sb_block_valid: the block at s_first_data_block (the superblock's) is never file data.
  if (e.pblk <= fs.sb.firstDataBlock || e.pblk + e.len > fs.sb.blocksCount) {
    throw corrupted(`extent ${e.lblk}+${e.len} points outside the filesystem (block ${e.pblk})`, where);
  }
  if (prev && prev.lblk + prev.len > e.lblk) throw corrupted(`overlapping extents at logical block ${e.lblk}`, where);
  if (inSystemZone(fs, inode, e.pblk, e.len)) throw corrupted(`extent ${e.lblk}+${e.len} (block ${e.pblk}) overlaps filesystem metadata`, where);
}

/** ext4_inode_block_valid: blocks of the system zone belong to no file but (the journal's) their own inode. */
function inSystemZone(fs: Ext4, inode: Inode, pblk: number, len: number): boolean {
  const z = fs.systemZone?.overlapping(pblk, len);
  return z !== undefined && z.ino !== inode.ino;
}

function verifyExtentBlock(fs: Ext4, inode: Inode, b: Uint8Array, pblk: number): void {
  if (!fs.metadataCsum || !fs.verifyChecksums || fs.verified.has(inode.ino, pblk)) return;
  const tail = extentTailOffset(extentHeader(b).max);
  if (tail + 4 > b.length) throw corrupted("extent block has no room for its checksum", { ino: inode.ino, block: pblk });
  const want = fs.csum.extentBlock(fs.inodeSeed(inode), b, tail);
  if (u32(b, tail) !== want) throw corrupted("extent block checksum mismatch", { ino: inode.ino, block: pblk });
  fs.verified.add(inode.ino, pblk);
}
