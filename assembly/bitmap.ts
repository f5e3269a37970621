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
  for (let i = start; i < end; i++) {
    const p = ptr + (<usize>i >>> 3);
    const m = <u8>(<u32>1 << (i & 7));
    store<u8>(p, value ? load<u8>(p) | m : load<u8>(p) & ~m);
  }
}
