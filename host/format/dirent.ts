// Directory entries (directory.rst): linear blocks, the checksum tail, and the
// htree (dx) root and interior nodes.

import { u16, u32, u8 } from "./bytes.js";

export const FT = { UNKNOWN: 0, REG: 1, DIR: 2, CHR: 3, BLK: 4, FIFO: 5, SOCK: 6, SYMLINK: 7 } as const;
export const DIRENT_TAIL_SIZE = 12;
export const DIRENT_TAIL_FT = 0xde;

export interface RawDirent {
  inode: number;
  recLen: number;
  nameLen: number;
  fileType: number;
  /** Offset of the entry within its block. */
  offset: number;
  name: Uint8Array;
}

/** rec_len as stored; 0 or 65536 means the whole (64 KiB) block. */
export function recLenAt(b: Uint8Array, o: number, blockSize: number): number {
  const v = u16(b, o + 4);
  if (blockSize < 65536) return v;
  return v === 65535 || v === 0 ? blockSize : (v & 65532) | ((v & 3) << 16);
}

/** True if the block ends in a metadata_csum dirent tail. */
export function hasDirentTail(b: Uint8Array, blockSize: number): boolean {
  const t = blockSize - DIRENT_TAIL_SIZE;
  return u32(b, t) === 0 && u16(b, t + 4) === DIRENT_TAIL_SIZE && u8(b, t + 6) === 0 && u8(b, t + 7) === DIRENT_TAIL_FT;
}

// dx (htree) structures
export interface DxRootInfo { hashVersion: number; infoLength: number; indirectLevels: number; flags: number }
export interface DxEntry { hash: number; block: number }
export interface DxNode { limit: number; count: number; countOffset: number; entries: DxEntry[] }

export const DX_ROOT_INFO_OFFSET = 24; // after "." (12 bytes) and the start of ".."

export function dxRootInfo(b: Uint8Array): DxRootInfo {
  const o = DX_ROOT_INFO_OFFSET;
  return { hashVersion: u8(b, o + 4), infoLength: u8(b, o + 5), indirectLevels: u8(b, o + 6), flags: u8(b, o + 7) };
}

/** Parses limit/count and the entries at countOffset (entry 0 has no hash: it covers the low end). */
export function dxEntries(b: Uint8Array, countOffset: number): DxNode {
  const limit = u16(b, countOffset);
  const count = u16(b, countOffset + 2);
  const entries: DxEntry[] = [];
  for (let i = 0; i < count; i++) {
    const p = countOffset + i * 8;
    entries.push({ hash: i === 0 ? 0 : u32(b, p), block: u32(b, p + 4) });
  }
  return { limit, count, countOffset, entries };
}
