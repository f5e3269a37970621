// Block group descriptors: 32 bytes, or desc_size (64) with the 64bit feature.

import { hiLo, setU16, setU32, u16, u32 } from "./bytes.js";

export const BG_FLAGS = { INODE_UNINIT: 0x1, BLOCK_UNINIT: 0x2, INODE_ZEROED: 0x4 } as const;
export const BG_CHECKSUM_OFFSET = 0x1e;

export interface GroupDesc {
  blockBitmap: number;
  inodeBitmap: number;
  inodeTable: number;
  freeBlocks: number;
  freeInodes: number;
  usedDirs: number;
  flags: number;
  excludeBitmap: number;
  blockBitmapCsum: number;
  inodeBitmapCsum: number;
  itableUnused: number;
  checksum: number;
}

export function decodeGroupDesc(b: Uint8Array, o: number, descSize: number): GroupDesc {
  const wide = descSize >= 64;
  const hi = (off: number, bits: 16 | 32) => (wide ? (bits === 32 ? u32(b, o + off) : u16(b, o + off)) : 0);
  return {
    blockBitmap: hiLo(hi(0x20, 32), u32(b, o + 0x0)),
    inodeBitmap: hiLo(hi(0x24, 32), u32(b, o + 0x4)),
    inodeTable: hiLo(hi(0x28, 32), u32(b, o + 0x8)),
    freeBlocks: hi(0x2c, 16) * 0x10000 + u16(b, o + 0xc),
    freeInodes: hi(0x2e, 16) * 0x10000 + u16(b, o + 0xe),
    usedDirs: hi(0x30, 16) * 0x10000 + u16(b, o + 0x10),
    flags: u16(b, o + 0x12),
    excludeBitmap: hiLo(hi(0x34, 32), u32(b, o + 0x14)),
    blockBitmapCsum: ((hi(0x38, 16) << 16) | u16(b, o + 0x18)) >>> 0,
    inodeBitmapCsum: ((hi(0x3a, 16) << 16) | u16(b, o + 0x1a)) >>> 0,
    itableUnused: hi(0x32, 16) * 0x10000 + u16(b, o + 0x1c),
    checksum: u16(b, o + BG_CHECKSUM_OFFSET),
  };
}

export function encodeGroupDesc(g: GroupDesc, b: Uint8Array, o: number, descSize: number): void {
  const wide = descSize >= 64;
  const lo32 = (v: number) => v >>> 0;
  const hi32 = (v: number) => Math.floor(v / 0x100000000) >>> 0;
  setU32(b, o + 0x0, lo32(g.blockBitmap));
  setU32(b, o + 0x4, lo32(g.inodeBitmap));
  setU32(b, o + 0x8, lo32(g.inodeTable));
  setU16(b, o + 0xc, g.freeBlocks & 0xffff);
  setU16(b, o + 0xe, g.freeInodes & 0xffff);
  setU16(b, o + 0x10, g.usedDirs & 0xffff);
  setU16(b, o + 0x12, g.flags);
  setU32(b, o + 0x14, lo32(g.excludeBitmap));
  setU16(b, o + 0x18, g.blockBitmapCsum & 0xffff);
  setU16(b, o + 0x1a, g.inodeBitmapCsum & 0xffff);
  setU16(b, o + 0x1c, g.itableUnused & 0xffff);
  setU16(b, o + BG_CHECKSUM_OFFSET, g.checksum);
  if (wide) {
    setU32(b, o + 0x20, hi32(g.blockBitmap));
    setU32(b, o + 0x24, hi32(g.inodeBitmap));
    setU32(b, o + 0x28, hi32(g.inodeTable));
    setU16(b, o + 0x2c, g.freeBlocks >>> 16);
    setU16(b, o + 0x2e, g.freeInodes >>> 16);
    setU16(b, o + 0x30, g.usedDirs >>> 16);
    setU16(b, o + 0x32, g.itableUnused >>> 16);
    setU32(b, o + 0x34, hi32(g.excludeBitmap));
    setU16(b, o + 0x38, g.blockBitmapCsum >>> 16);
    setU16(b, o + 0x3a, g.inodeBitmapCsum >>> 16);
  }
}
