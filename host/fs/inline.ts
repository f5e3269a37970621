// Inline data: the first 60 bytes in i_block, the rest in the in-inode
// "system.data" xattr.

import { corrupted } from "../errors.js";
import type { Inode } from "../format/inode.js";
import { inodeXattrs } from "./xattr.js";
import type { Ext4 } from "./super.js";

const SYSTEM_DATA_INDEX = 7;

function systemData(fs: Ext4, inode: Inode): Uint8Array {
  for (const x of inodeXattrs(fs, inode)) {
    if (x.nameIndex === SYSTEM_DATA_INDEX && x.rawName.length === 4 && new TextDecoder().decode(x.rawName) === "data") return x.value;
  }
  throw corrupted("inline-data inode has no system.data attribute", { ino: inode.ino });
}

/**
 * The bytes stored inline: i_block then system.data, clipped to i_size. A file
 * may be larger than what is stored (mkfs makes all-zero files inline): the
 * rest reads as zeros, as the kernel's inline read path zero-fills it.
 */
export function inlinePayload(fs: Ext4, inode: Inode): Uint8Array {
  const extra = systemData(fs, inode);
  const stored = Math.min(inode.size, 60 + extra.length);
  const out = new Uint8Array(stored);
  out.set(inode.iBlock.subarray(0, Math.min(60, stored)));
  if (stored > 60) out.set(extra.subarray(0, stored - 60), 60);
  return out;
}

/** Everything stored inline, whatever i_size says: the 60 bytes of i_block, then system.data. */
export function inlineStored(fs: Ext4, inode: Inode): Uint8Array {
  const extra = systemData(fs, inode);
  const out = new Uint8Array(60 + extra.length);
  out.set(inode.iBlock.subarray(0, 60));
  out.set(extra, 60);
  return out;
}

/** Reads [pos, pos + dst.length) of an inline file into dst; returns bytes read. */
export function readInline(fs: Ext4, inode: Inode, pos: number, dst: Uint8Array): number {
  if (pos >= inode.size) return 0;
  const n = Math.min(dst.length, inode.size - pos);
  const payload = inlinePayload(fs, inode);
  const fromPayload = Math.max(0, Math.min(n, payload.length - pos));
  if (fromPayload > 0) dst.set(payload.subarray(pos, pos + fromPayload));
  dst.fill(0, fromPayload, n);
  return n;
}

/** The dirent regions of an inline directory (after the 4-byte parent inode). */
export function inlineDirRegions(fs: Ext4, inode: Inode): { bytes: Uint8Array; offset: number; length: number }[] {
  const regions = [{ bytes: inode.iBlock, offset: 4, length: 56 }];
  const extra = systemData(fs, inode);
  if (extra.length > 0) regions.push({ bytes: extra, offset: 0, length: extra.length });
  return regions;
}
