// The block allocation map mkfs plans with: one bit per block, kept per block
// group and allocated only for groups that have a used block, so a 1 TiB
// filesystem costs memory only for its metadata groups. The searches are the
// first-fit scans of libext2fs (find_first_zero / find_first_set), which is
// what makes our placement mke2fs's placement.

export class BlockMap {
  private readonly groups: (Uint8Array | null)[];

  constructor(
    readonly blocksCount: number,
    readonly firstDataBlock: number,
    readonly blocksPerGroup: number,
    groupCount: number,
  ) {
    this.groups = new Array<Uint8Array | null>(groupCount).fill(null);
  }

  private bits(g: number, create: boolean): Uint8Array | null {
    let b = this.groups[g];
    if (!b && create) b = this.groups[g] = new Uint8Array(Math.ceil(this.blocksPerGroup / 8));
    return b;
  }

  /** The group's bitmap (bit i = block first + i), or null when the group has no used block. */
  groupBits(g: number): Uint8Array | null { return this.groups[g]; }

  test(b: number): boolean {
    const r = b - this.firstDataBlock;
    const bits = this.groups[Math.floor(r / this.blocksPerGroup)];
    if (!bits) return false;
    const i = r % this.blocksPerGroup;
    return (bits[i >> 3] & (1 << (i & 7))) !== 0;
  }

  /** Marks [b, b + n) used. Block 0 below a first data block of 1 is outside every group and ignored. */
  mark(b: number, n = 1): void {
    let r = b - this.firstDataBlock;
    if (r < 0) { n += r; r = 0; }
    while (n > 0) {
      const g = Math.floor(r / this.blocksPerGroup);
      let i = r % this.blocksPerGroup;
      const take = Math.min(n, this.blocksPerGroup - i);
      const bits = this.bits(g, true)!;
      const end = i + take;
      while (i < end && (i & 7)) { bits[i >> 3] |= 1 << (i & 7); i++; }
      while (i + 8 <= end) { bits[i >> 3] = 0xff; i += 8; }
      while (i < end) { bits[i >> 3] |= 1 << (i & 7); i++; }
      r += take;
      n -= take;
    }
  }

  /** First block in [from, to] whose bit equals `set`, or -1. */
  private find(from: number, to: number, set: boolean): number {
    if (from < this.firstDataBlock) from = this.firstDataBlock;
    if (to >= this.blocksCount) to = this.blocksCount - 1;
    let b = from;
    while (b <= to) {
      const r = b - this.firstDataBlock;
      const g = Math.floor(r / this.blocksPerGroup);
      const groupEnd = Math.min(to, this.firstDataBlock + (g + 1) * this.blocksPerGroup - 1);
      const bits = this.groups[g];
      if (!bits) {
        if (!set) return b;
        b = groupEnd + 1;
        continue;
      }
      let i = r % this.blocksPerGroup;
      const last = groupEnd - this.firstDataBlock - g * this.blocksPerGroup;
      while (i <= last) {
        const byte = bits[i >> 3];
        if ((i & 7) === 0 && i + 7 <= last && byte === (set ? 0 : 0xff)) { i += 8; continue; }
        if (((byte >> (i & 7)) & 1) === (set ? 1 : 0)) return this.firstDataBlock + g * this.blocksPerGroup + i;
        i++;
      }
      b = groupEnd + 1;
    }
    return -1;
  }

  findFirstZero(from: number, to: number): number { return this.find(from, to, false); }
  findFirstSet(from: number, to: number): number { return this.find(from, to, true); }

  /** Used blocks in [from, to]. */
  countUsed(from: number, to: number): number {
    let n = 0;
    let b = from;
    while (b <= to) {
      const s = this.findFirstSet(b, to);
      if (s < 0) break;
      const z = this.findFirstZero(s, to);
      const end = z < 0 ? to + 1 : z;
      n += end - s;
      b = end;
    }
    return n;
  }

  /**
   * ext2fs_get_free_blocks2: the first b from `start` (stepping by `ratio`) with
   * [b, b + num) all free, before reaching `finish`; the search wraps to the
   * first data block when it runs off the end, unless finish > start.
   * Returns -1 when there is none.
   */
  getFreeBlocks(start: number, finish: number, num: number, ratio = 1): number {
    const align = (v: number) => v - (v % ratio);
    const first = align(start || this.firstDataBlock);
    if (!finish) finish = start;
    finish = align(finish);
    if (!num) num = 1;
    const lastStart = this.blocksCount - num;
    if (finish > start) return this.firstFitIn(first, Math.min(finish - 1, lastStart), num, ratio);
    const hit = this.firstFitIn(first, lastStart, num, ratio);
    if (hit >= 0) return hit;
    return this.firstFitIn(this.firstDataBlock, Math.min((finish || first) - 1, lastStart), num, ratio);
  }

  /** First b in [lo, hi] (b - lo a multiple of ratio) with [b, b + num) free. */
  private firstFitIn(lo: number, hi: number, num: number, ratio: number): number {
    let b = lo;
    while (b <= hi) {
      const used = this.findFirstSet(b, b + num - 1);
      if (used < 0) return b;
      // Every candidate up to the used block fails too: step past it.
      b += Math.ceil((used + 1 - b) / ratio) * ratio;
    }
    return -1;
  }
}
