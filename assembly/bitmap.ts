// Bit scans over little-endian bitmaps in linear memory (ext4 block and inode
// bitmaps use bit i = byte i>>3, bit i&7). Ranges are half-open [start, end).

/** First bit in [start, end) equal to `value` (0 or 1), or -1. */
export function bitmapFind(ptr: usize, start: u32, end: u32, value: u32): i32 {
  let i = start;
  const flip: u64 = value ? 0 : <u64>-1;
  while (i < end) {
    if ((i & 63) == 0 && i + 64 <= end) {
      const w = load<u64>(ptr + (<usize>i >>> 3)) ^ flip;
      if (w == 0) { i += 64; continue; }
      return <i32>(i + <u32>ctz(w));
    }
    const bit = (<u32>load<u8>(ptr + (<usize>i >>> 3)) >>> (i & 7)) & 1;
    if (bit == value) return <i32>i;
    i++;
  }
  return -1;
}

/** Number of set bits in [start, end). */
export function bitmapCount(ptr: usize, start: u32, end: u32): u32 {
  let n: u32 = 0;
  let i = start;
  while (i < end) {
    if ((i & 63) == 0 && i + 64 <= end) {
      n += <u32>popcnt(load<u64>(ptr + (<usize>i >>> 3)));
      i += 64;
    } else {
      n += (<u32>load<u8>(ptr + (<usize>i >>> 3)) >>> (i & 7)) & 1;
      i++;
    }
  }
  return n;
}

/** Set (value 1) or clear (value 0) bits [start, end). */
export function bitmapFill(ptr: usize, start: u32, end: u32, value: u32): void {
  let i = start;
  while (i < end) {
    if ((i & 7) == 0 && i + 8 <= end) {
      // Whole bytes in the middle of a run (allocations are often thousands of bits).
      const n = (end - i) >>> 3;
      memory.fill(ptr + (<usize>i >>> 3), value ? 0xff : 0, n);
      i += n << 3;
      continue;
    }
    const p = ptr + (<usize>i >>> 3);
    const m = <u8>(<u32>1 << (i & 7));
    store<u8>(p, value ? load<u8>(p) | m : load<u8>(p) & ~m);
    i++;
  }
}

/**
 * Start of the first run of clear bits in [start, end) at least `minLen`
 * long (the run may go on past it), or -1. The allocator's "a free extent
 * that covers the request".
 */
export function bitmapFindZeroRun(ptr: usize, start: u32, end: u32, minLen: u32): i32 {
  let i = start;
  while (i < end) {
    const s = bitmapFind(ptr, i, end, 0);
    if (s < 0) return -1;
    const e = bitmapFind(ptr, <u32>s, end, 1);
    const stop: u32 = e < 0 ? end : <u32>e;
    if (stop - <u32>s >= minLen) return s;
    i = stop;
  }
  return -1;
}

let lastRunLen: u32 = 0;

/**
 * Start of the longest run of clear bits in [start, end) (the first of
 * equals), or -1; its length is `bitmapLastRunLen()` after the call.
 */
export function bitmapLongestZeroRun(ptr: usize, start: u32, end: u32): i32 {
  let best: i32 = -1;
  let bestLen: u32 = 0;
  let i = start;
  while (i < end) {
    const s = bitmapFind(ptr, i, end, 0);
    if (s < 0) break;
    const e = bitmapFind(ptr, <u32>s, end, 1);
    const stop: u32 = e < 0 ? end : <u32>e;
    if (stop - <u32>s > bestLen) { best = s; bestLen = stop - <u32>s; }
    i = stop;
  }
  lastRunLen = bestLen;
  return best;
}

export function bitmapLastRunLen(): u32 { return lastRunLen; }
