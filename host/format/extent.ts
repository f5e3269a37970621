// Extent tree nodes (ifork.rst): a 12-byte header, then 12-byte index or
// leaf entries, then (in blocks) a 4-byte checksum tail.

import { hiLo, u16, u32 } from "./bytes.js";

export const EXTENT_MAGIC = 0xf30a;
export const EXT_INIT_MAX_LEN = 32768;

export interface ExtentHeader { entries: number; max: number; depth: number; generation: number }
export interface LeafExtent { lblk: number; len: number; pblk: number; unwritten: boolean }
export interface IndexEntry { lblk: number; leaf: number }

export function extentHeader(b: Uint8Array, o = 0): ExtentHeader {
  return { entries: u16(b, o + 2), max: u16(b, o + 4), depth: u16(b, o + 6), generation: u32(b, o + 8) };
}

export function leafAt(b: Uint8Array, i: number, o = 0): LeafExtent {
  const p = o + 12 + i * 12;
  const raw = u16(b, p + 4);
  const unwritten = raw > EXT_INIT_MAX_LEN;
  return { lblk: u32(b, p), len: unwritten ? raw - EXT_INIT_MAX_LEN : raw, pblk: hiLo(u16(b, p + 6), u32(b, p + 8)), unwritten };
}

export function indexAt(b: Uint8Array, i: number, o = 0): IndexEntry {
  const p = o + 12 + i * 12;
  return { lblk: u32(b, p), leaf: hiLo(u16(b, p + 8), u32(b, p + 4)) };
}

/** Offset of the checksum tail in an extent block with `max` entries. */
export const extentTailOffset = (max: number) => 12 + 12 * max;
