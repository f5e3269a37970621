// Extended attributes (attributes.rst): entries in the inode body after
// i_extra_isize, and in a separate block with a 32-byte header.

import { corrupted } from "../errors.js";
import { setU16, setU32, u16, u32, u8 } from "./bytes.js";

export const XATTR_MAGIC = 0xea020000;
export const XATTR_BLOCK_HEADER = 32;

/** Name index -> prefix, as the kernel maps them. */
export const XATTR_PREFIX: Record<number, string> = {
  1: "user.", 2: "system.posix_acl_access", 3: "system.posix_acl_default", 4: "trusted.",
  6: "security.", 7: "system.", 8: "system.richacl", 10: "gnu.",
};

export const XATTR_INDEX_POSIX_ACL_ACCESS = 2;
export const XATTR_INDEX_POSIX_ACL_DEFAULT = 3;

/** Indexes the kernel lists and gets (ext4_xattr_handler_map): not 7 (system.data) or 8 (richacl). */
export const XATTR_VISIBLE = new Set([1, 2, 3, 4, 6, 10]);

export interface XattrEntry {
  nameIndex: number;
  name: Uint8Array;
  fullName: string;
  valueOffset: number;
  valueInum: number;
  valueSize: number;
  hash: number;
}

/**
 * Parses entries starting at `start` in `b` until the 4-byte zero terminator,
 * staying inside [start, end). Value offsets are left relative (the caller
 * knows their base).
 */
export function parseXattrEntries(b: Uint8Array, start: number, end: number, where: { ino?: number; block?: number }): XattrEntry[] {
  const out: XattrEntry[] = [];
  let p = start;
  while (p + 4 <= end && u32(b, p) !== 0) {
    if (p + 16 > end) throw corrupted("xattr entry runs past its area", where);
    const at = p;
    const nameLen = u8(b, at);
    const nameIndex = u8(b, at + 1);
    if (at + 16 + nameLen > end) throw corrupted("xattr name runs past its area", where);
    const name = b.slice(at + 16, at + 16 + nameLen);
    const prefix = XATTR_PREFIX[nameIndex];
    p += (16 + nameLen + 3) & ~3;
    // Indexes with no name space here (9 encryption context, others) are
    // valid on disk but not visible, as the kernel skips them in listxattr.
    if (prefix === undefined && nameIndex !== 0) continue;
    const text = new TextDecoder().decode(name);
    // posix ACL indexes have a complete name and no suffix.
    const fullName = nameIndex === 2 || nameIndex === 3 ? prefix : (prefix ?? "") + text;
    out.push({ nameIndex, name, fullName, valueOffset: u16(b, at + 2), valueInum: u32(b, at + 4), valueSize: u32(b, at + 8), hash: u32(b, at + 12) });
    if (out.length > 4096) throw corrupted("too many xattr entries", where);
  }
  return out;
}

// ---- the write side: sizes, hashes, sorting and encoding (fs/ext4/xattr.h) ----

export const XATTR_ENTRY_SIZE = 16;
/** EXT4_XATTR_REFCOUNT_MAX: references one block may carry. */
export const XATTR_REFCOUNT_MAX = 1024;
/** XATTR_NAME_MAX and XATTR_SIZE_MAX of the VFS. */
export const XATTR_NAME_MAX = 255;
export const XATTR_SIZE_MAX = 65536;
export const XATTR_INDEX_SYSTEM = 7;

/** EXT4_XATTR_LEN: an entry with its name, padded to 4. */
export const xattrLen = (nameLen: number): number => (nameLen + XATTR_ENTRY_SIZE + 3) & ~3;
/** EXT4_XATTR_SIZE: a value padded to 4. */
export const xattrSize = (size: number): number => (size + 3) & ~3;
/** EXT4_XATTR_MIN_LARGE_EA_SIZE: with ea_inode, values padded past this go to their own inode. */
export const xattrMinLargeEaSize = (blockSize: number): number => blockSize - xattrLen(3) - XATTR_BLOCK_HEADER - 4;

/** One entry as stored: the value bytes, or (ea_inode) the inode holding them. */
export interface XattrRecord {
  nameIndex: number;
  name: Uint8Array;
  /** The value when it is stored in the area (valueInum 0). */
  value: Uint8Array;
  valueInum: number;
  valueSize: number;
  hash: number;
}

/**
 * Every entry of an area, whatever its name index (the write side must keep
 * entries it cannot show), with its value copied out. Checked as the
 * kernel's check_xattrs: names inside the area, values inside it and past
 * the terminator.
 */
export function parseXattrRecords(b: Uint8Array, first: number, valueBase: number, end: number, where: { ino?: number; block?: number }): XattrRecord[] {
  const out: XattrRecord[] = [];
  const valueAt: number[] = [];
  let p = first;
  for (;;) {
    if (p + 4 > end) throw corrupted("xattr entries run past their area", where);
    if (u32(b, p) === 0) break;
    const nameLen = u8(b, p);
    if (p + xattrLen(nameLen) + 4 > end) throw corrupted("xattr entry runs past its area", where);
    const valueInum = u32(b, p + 4);
    const valueSize = u32(b, p + 8);
    let value = new Uint8Array(0);
    if (valueInum === 0 && valueSize !== 0) {
      const at = valueBase + u16(b, p + 2);
      if (at + xattrSize(valueSize) > end) throw corrupted("xattr value lies outside its area", where);
      value = b.slice(at, at + valueSize);
      valueAt.push(at);
    }
    out.push({ nameIndex: u8(b, p + 1), name: b.slice(p + 16, p + 16 + nameLen), value, valueInum, valueSize, hash: u32(b, p + 12) });
    p += xattrLen(nameLen);
    if (out.length > 4096) throw corrupted("too many xattr entries", where);
  }
  // Values lie past the terminator (the kernel's "overlapping e_value").
  if (valueAt.some((at) => at < p + 4)) throw corrupted("xattr value overlaps the entries", where);
  return out;
}

/** The kernel's order of block entries (xattr_find_entry, sorted): name index, name length, name bytes. */
export function compareXattrKey(a: { nameIndex: number; name: Uint8Array }, b: { nameIndex: number; name: Uint8Array }): number {
  if (a.nameIndex !== b.nameIndex) return a.nameIndex - b.nameIndex;
  if (a.name.length !== b.name.length) return a.name.length - b.name.length;
  for (let i = 0; i < a.name.length; i++) if (a.name[i] !== b.name[i]) return a.name[i] - b.name[i];
  return 0;
}

/**
 * ext4_xattr_hash_entry: name bytes (unsigned) folded by 5, then the value's
 * little-endian words over its padded size folded by 16.
 */
export function xattrHashEntry(name: Uint8Array, value: Uint8Array): number {
  let h = 0;
  for (let i = 0; i < name.length; i++) h = ((h << 5) ^ (h >>> 27) ^ name[i]) >>> 0;
  const words = xattrSize(value.length) >> 2;
  for (let w = 0; w < words; w++) {
    let v = 0;
    for (let k = 3; k >= 0; k--) v = (v << 8) | (value[w * 4 + k] ?? 0);
    h = ((h << 16) ^ (h >>> 16) ^ (v >>> 0)) >>> 0;
  }
  return h >>> 0;
}

/** ext4_xattr_rehash: the block hash folds the entry hashes by 16; 0 (never shared) if any entry hash is 0. */
export function xattrBlockHash(records: { hash: number }[]): number {
  let h = 0;
  for (const r of records) {
    if (r.hash === 0) return 0;
    h = ((h << 16) ^ (h >>> 16) ^ r.hash) >>> 0;
  }
  return h >>> 0;
}

/** Bytes the entries and their in-area values take, without the 4-byte terminator. */
export function xattrSpaceUsed(records: XattrRecord[]): number {
  let n = 0;
  for (const r of records) n += xattrLen(r.name.length) + (r.valueInum === 0 ? xattrSize(r.valueSize) : 0);
  return n;
}

/**
 * Writes `records` into [first, end) of `b`: entries from `first`, the
 * terminator, values packed down from `end`, 4-aligned with zeroed padding,
 * offsets relative to `valueBase`; every other byte of the range zeroed. The
 * caller has checked that they fit.
 */
export function encodeXattrEntries(b: Uint8Array, first: number, valueBase: number, end: number, records: XattrRecord[]): void {
  if (first + xattrSpaceUsed(records) + 4 > end) throw new RangeError("xattr entries do not fit their area");
  b.fill(0, first, end);
  let p = first;
  let v = end;
  for (const r of records) {
    b[p] = r.name.length;
    b[p + 1] = r.nameIndex;
    let offs = 0;
    if (r.valueInum === 0 && r.valueSize !== 0) {
      v -= xattrSize(r.valueSize);
      b.set(r.value.subarray(0, r.valueSize), v);
      offs = v - valueBase;
    }
    setU16(b, p + 2, offs);
    setU32(b, p + 4, r.valueInum);
    setU32(b, p + 8, r.valueSize);
    setU32(b, p + 12, r.hash);
    b.set(r.name, p + 16);
    p += xattrLen(r.name.length);
  }
}
