// Extended attributes of an inode: in-inode entries and the xattr block,
// values inline or (ea_inode) stored in their own inode.

import { corrupted } from "../errors.js";
import { u32 } from "../format/bytes.js";
import type { Inode } from "../format/inode.js";
import { GOOD_OLD_INODE_SIZE, INODE_FLAGS } from "../format/inode.js";
import { parseXattrEntries, XATTR_BLOCK_HEADER, XATTR_MAGIC, XattrEntry } from "../format/xattr.js";
import { MapKind } from "./mapping.js";
import { xattrBlockCache } from "./xattr-cache.js";
import type { Ext4 } from "./super.js";

export interface Xattr { name: string; nameIndex: number; rawName: Uint8Array; value: Uint8Array }

const MAX_EA_INODE_VALUE = 64 << 20;

export function inodeXattrs(fs: Ext4, inode: Inode): Xattr[] {
  const out: Xattr[] = [];
  const raw = inode.raw;
  const start = GOOD_OLD_INODE_SIZE + inode.extraIsize;
  if (fs.sb.inodeSize > GOOD_OLD_INODE_SIZE && start + 4 <= fs.sb.inodeSize && u32(raw, start) === XATTR_MAGIC) {
    const first = start + 4;
    const entries = parseXattrEntries(raw, first, fs.sb.inodeSize, { ino: inode.ino });
    for (const e of entries) out.push({ ...named(e), value: value(fs, inode, e, raw, first, fs.sb.inodeSize, undefined) });
  }
  if (inode.fileAcl !== 0) {
    const pblk = inode.fileAcl;
    const b = fs.bcache.readCopy(pblk, "xattr block");
    const where = { ino: inode.ino, block: pblk };
    if (u32(b, 0) !== XATTR_MAGIC) throw corrupted("bad xattr block magic", where);
    if (u32(b, 8) !== 1) throw corrupted(`xattr block claims ${u32(b, 8)} blocks`, where);
    if (fs.metadataCsum && fs.verifyChecksums && u32(b, 0x10) !== fs.csum.xattrBlock(pblk, b)) {
      throw corrupted("xattr block checksum mismatch", where);
    }
    const entries = parseXattrEntries(b, XATTR_BLOCK_HEADER, b.length, where);
    for (const e of entries) out.push({ ...named(e), value: value(fs, inode, e, b, 0, b.length, pblk) });
    // ext4_xattr_block_get/list: a block read is a candidate for sharing.
    xattrBlockCache(fs).insert(u32(b, 12), pblk);
  }
  return out;
}

function named(e: XattrEntry): { name: string; nameIndex: number; rawName: Uint8Array } {
  return { name: e.fullName, nameIndex: e.nameIndex, rawName: e.name };
}

function value(fs: Ext4, inode: Inode, e: XattrEntry, b: Uint8Array, base: number, end: number, pblk: number | undefined): Uint8Array {
  const where = { ino: inode.ino, block: pblk };
  if (e.valueInum !== 0) {
    if (!(fs.sb.featureIncompat & 0x400)) throw corrupted("xattr value in an inode without the ea_inode feature", where);
    return eaInodeValue(fs, e.valueInum, e.valueSize, inode.ino);
  }
  const from = base + e.valueOffset;
  if (e.valueSize === 0) return new Uint8Array(0);
  if (from < base || from + e.valueSize > end) throw corrupted(`xattr '${e.fullName}' value lies outside its area`, where);
  return b.slice(from, from + e.valueSize);
}

function eaInodeValue(fs: Ext4, ino: number, size: number, owner: number): Uint8Array {
  if (size > MAX_EA_INODE_VALUE) throw corrupted(`xattr value of ${size} bytes is implausible`, { ino: owner });
  const ea = fs.inode(ino);
  if (!(ea.flags & INODE_FLAGS.EA_INODE)) throw corrupted(`xattr value inode ${ino} lacks the EA_INODE flag`, { ino: owner });
  if (ea.size !== size) throw corrupted(`xattr value inode ${ino} has size ${ea.size}, entry says ${size}`, { ino: owner });
  const bs = fs.sb.blockSize;
  const out = new Uint8Array(size);
  for (let lblk = 0; lblk * bs < size; ) {
    const m = fs.mapBlocks(ea, lblk, Math.ceil((size - lblk * bs) / bs));
    for (let k = 0; k < m.len && (lblk + k) * bs < size; k++) {
      const at = (lblk + k) * bs;
      const n = Math.min(bs, size - at);
      if (m.kind === MapKind.Mapped) out.set(fs.bcache.read(m.pblk + k, "xattr value block").subarray(0, n), at);
    }
    lblk += m.len;
  }
  return out;
}
