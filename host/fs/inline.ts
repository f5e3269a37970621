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

/** The whole inline payload of a file (size bytes). */
export function inlineFileData(fs: Ext4, inode: Inode): Uint8Array {
  const extra = systemData(fs, inode);
  if (inode.size > 60 + extra.length) throw corrupted(`inline file size ${inode.size} exceeds its inline capacity ${60 + extra.length}`, { ino: inode.ino });
  const out = new Uint8Array(inode.size);
  out.set(inode.iBlock.subarray(0, Math.min(60, inode.size)));
  if (inode.size > 60) out.set(extra.subarray(0, inode.size - 60), 60);
  return out;
}

/** The dirent regions of an inline directory (after the 4-byte parent inode). */
export function inlineDirRegions(fs: Ext4, inode: Inode): { bytes: Uint8Array; offset: number; length: number }[] {
  const regions = [{ bytes: inode.iBlock, offset: 4, length: 56 }];
  const extra = systemData(fs, inode);
  if (extra.length > 0) regions.push({ bytes: extra, offset: 0, length: extra.length });
  return regions;
}
