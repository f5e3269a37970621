// The system zone (fs/ext4/block_validity.c): the blocks that hold metadata
// (superblock, descriptors and reserved GDT blocks of the first groups and flex-group leaders,
// bitmaps, inode tables, the journal), built at mount as the kernel builds
// it, which refuses the mount when two of them overlap. A file's extents and
// xattr block must then lie outside it (ext4_inode_block_valid), save the
// journal inode's own blocks.

import { corrupted } from "../errors.js";
import { COMPAT, INCOMPAT } from "../format/features.js";
import { groupCount } from "../format/superblock.js";
import { groupFirstBlock, groupHasSuper } from "./groups.js";
import { MapKind } from "./mapping.js";
import type { Ext4 } from "./super.js";

interface Zone { start: number; count: number; ino: number }

export class SystemZone {
  /** Disjoint zones in block order (adjacent zones of one owner merged, as add_system_zone does). */
  private zones: Zone[] = [];

  /** Index of the last zone starting at or before `blk`, or -1. */
  private floor(blk: number): number {
    let lo = 0;
    let hi = this.zones.length - 1;
    let at = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (this.zones[mid].start <= blk) { at = mid; lo = mid + 1; } else hi = mid - 1;
    }
    return at;
  }

  /** add_system_zone: a zone whose first block lies inside an existing one is an overlap. */
  add(start: number, count: number, ino: number): boolean {
    const at = this.floor(start);
    const prev = at >= 0 ? this.zones[at] : undefined;
    if (prev && start < prev.start + prev.count) return false;
    const z: Zone = { start, count, ino };
    this.zones.splice(at + 1, 0, z);
    let i = at + 1;
    if (prev && prev.start + prev.count === z.start && prev.ino === z.ino) {
      prev.count += z.count;
      this.zones.splice(i, 1);
      i--;
    }
    const cur = this.zones[i];
    const next = this.zones[i + 1];
    if (next && cur.start + cur.count === next.start && cur.ino === next.ino) {
      cur.count += next.count;
      this.zones.splice(i + 1, 1);
    }
    return true;
  }

  /** The zone overlapping [start, start + count), if any. */
  overlapping(start: number, count: number): Zone | undefined {
    const at = this.floor(start + count - 1);
    const z = at >= 0 ? this.zones[at] : undefined;
    return z && z.start + z.count > start ? z : undefined;
  }
}

/** ext4_setup_system_zone, after the descriptors are loaded and the journal replayed. */
export function setupSystemZone(fs: Ext4): SystemZone {
  const sb = fs.sb;
  const zone = new SystemZone();
  const flexSize = sb.featureIncompat & INCOMPAT.FLEX_BG && sb.logGroupsPerFlex >= 1 && sb.logGroupsPerFlex <= 31 ? 2 ** sb.logGroupsPerFlex : 1;
  const itb = Math.floor(sb.inodesPerGroup / (sb.blockSize / sb.inodeSize));
  const groups = groupCount(sb);
  const overlap = (what: string, g?: number) => corrupted(`${what}${g === undefined ? "" : ` of group ${g}`} overlaps other metadata (system zone)`);
  for (let g = 0; g < groups; g++) {
    if (groupHasSuper(sb, g) && (g < 5 || g % flexSize === 0)) {
      // The kernel (6.18, checked) counts the reserved GDT blocks with the descriptors.
      if (!zone.add(groupFirstBlock(sb, g), numGdb(fs, g) + 1 + sb.reservedGdtBlocks, 0)) throw overlap("superblock and descriptors", g);
    }
    const gd = fs.groups[g];
    if (!zone.add(gd.blockBitmap, 1, 0)) throw overlap("block bitmap", g);
    if (!zone.add(gd.inodeBitmap, 1, 0)) throw overlap("inode bitmap", g);
    if (!zone.add(gd.inodeTable, itb, 0)) throw overlap("inode table", g);
  }
  const jino = sb.journalInum;
  if (sb.featureCompat & COMPAT.HAS_JOURNAL && jino !== 0) {
    // ext4_protect_reserved_inode: every mapped block of the journal, in logical order.
    if (jino < 2 || jino > sb.inodesCount) throw corrupted(`journal inode ${jino} is out of range`);
    const j = fs.inode(jino);
    const num = Math.ceil(j.size / sb.blockSize);
    for (let i = 0; i < num; ) {
      const m = fs.mapBlocks(j, i, num - i);
      if (m.kind === MapKind.Hole) { i += m.len; continue; }
      if (!zone.add(m.pblk, m.len, jino)) throw corrupted(`blocks ${m.pblk}-${m.pblk + m.len - 1} from inode ${jino} overlap system zone`, { ino: jino, block: m.pblk });
      i += m.len;
    }
  }
  return zone;
}

/** ext4_bg_num_gdb: descriptor blocks group g carries (meta_bg: one in a meta group's first, second and last). */
function numGdb(fs: Ext4, g: number): number {
  const sb = fs.sb;
  const perBlock = sb.blockSize / sb.descSize;
  const metagroup = Math.floor(g / perBlock);
  if (!(sb.featureIncompat & INCOMPAT.META_BG) || metagroup < sb.firstMetaBg) {
    if (!groupHasSuper(sb, g)) return 0;
    return sb.featureIncompat & INCOMPAT.META_BG ? sb.firstMetaBg : Math.ceil(groupCount(sb) / perBlock);
  }
  const first = metagroup * perBlock;
  return g === first || g === first + 1 || g === first + perBlock - 1 ? 1 : 0;
}
