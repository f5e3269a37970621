// Block-mapped (non-extent) files: 12 direct blocks, then single, double and
// triple indirect blocks of 32-bit block numbers; 0 is a hole.

import { corrupted } from "../errors.js";
import { u32 } from "../format/bytes.js";
import type { Inode } from "../format/inode.js";
import { BlockMapping, MapKind } from "./mapping.js";
import type { Ext4 } from "./super.js";

const DIRECT = 12;

export function indirectMapBlocks(fs: Ext4, inode: Inode, lblk: number, maxLen: number): BlockMapping {
  const per = fs.sb.blockSize / 4;
  const where = { ino: inode.ino };
  // Path of offsets from the inode's i_block down to the data block pointer.
  let path: number[];
  let rootSlot: number;
  let rel = lblk;
  if (rel < DIRECT) {
    rootSlot = rel;
    path = [];
  } else if ((rel -= DIRECT) < per) {
    rootSlot = 12; path = [rel];
  } else if ((rel -= per) < per * per) {
    rootSlot = 13; path = [Math.floor(rel / per), rel % per];
  } else if ((rel -= per * per) < per * per * per) {
    rootSlot = 14; path = [Math.floor(rel / (per * per)), Math.floor(rel / per) % per, rel % per];
  } else {
    return { lblk, len: Math.max(1, maxLen), pblk: 0, kind: MapKind.Hole };
  }
  const check = (b: number, what: string) => {
    if (b !== 0 && (b < fs.sb.firstDataBlock || b >= fs.sb.blocksCount)) throw corrupted(`${what} ${b} outside the filesystem`, { ...where, block: b });
    return b;
  };
  let ptr = check(u32(inode.iBlock, rootSlot * 4), rootSlot < DIRECT ? "data block" : "indirect block");
  if (path.length === 0) {
    // Direct blocks: extend over following direct slots that continue the run.
    let len = 1;
    while (rootSlot + len < DIRECT && len < maxLen) {
      const n = u32(inode.iBlock, (rootSlot + len) * 4);
      if (ptr === 0 ? n !== 0 : n !== ptr + len) break;
      len++;
    }
    return { lblk, len, pblk: ptr, kind: ptr === 0 ? MapKind.Hole : MapKind.Mapped };
  }
  // Blocks covered by one entry at each level below the root, for hole lengths.
  for (let level = 0; level < path.length; level++) {
    const span = per ** (path.length - level - 1);
    if (ptr === 0) {
      const covered = span * (per - path[level]) - (lblkWithin(path, level, per));
      return { lblk, len: Math.max(1, Math.min(maxLen, covered)), pblk: 0, kind: MapKind.Hole };
    }
    const block = fs.bcache.read(ptr, "indirect block");
    const slot = path[level];
    const next = check(u32(block, slot * 4), level === path.length - 1 ? "data block" : "indirect block");
    if (level === path.length - 1) {
      let len = 1;
      while (slot + len < per && len < maxLen) {
        const n = u32(block, (slot + len) * 4);
        if (next === 0 ? n !== 0 : n !== next + len) break;
        len++;
      }
      return { lblk, len, pblk: next, kind: next === 0 ? MapKind.Hole : MapKind.Mapped };
    }
    ptr = next;
  }
  throw corrupted("unreachable indirect walk", where);
}

/** Blocks already passed inside the subtree of path[level] (the offset of lblk below that entry). */
function lblkWithin(path: number[], level: number, per: number): number {
  let off = 0;
  for (let l = level + 1; l < path.length; l++) off = off * per + path[l];
  return off;
}
