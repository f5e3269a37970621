// Extended attributes (attributes.rst): entries in the inode body after
// i_extra_isize, and in a separate block with a 32-byte header.

import { corrupted } from "../errors.js";
import { u16, u32, u8 } from "./bytes.js";

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
