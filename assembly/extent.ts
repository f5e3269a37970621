// Search of on-disk extent tree nodes (header 12 bytes, then 12-byte entries,
// little-endian). Index entries and leaf entries both start with their first
// logical block, so one binary search serves both.

export const EXT_MAGIC: u16 = 0xF30A;

/**
 * Validates the node header at ptr for a node of `nodeBytes` bytes.
 * Returns depth (>= 0) or -1 if the header is corrupt.
 */
export function extentCheckHeader(ptr: usize, nodeBytes: u32, expectDepth: i32): i32 {
  if (load<u16>(ptr) != EXT_MAGIC) return -1;
  const entries = <u32>load<u16>(ptr + 2);
  const max = <u32>load<u16>(ptr + 4);
  const depth = <i32>load<u16>(ptr + 6);
  if (max == 0 || entries > max) return -1;
  if (<u32>12 + max * 12 > nodeBytes) return -1;
  if (depth > 5) return -1;
  if (expectDepth >= 0 && depth != expectDepth) return -1;
  // Entries must be sorted by first logical block.
  let prev: u32 = 0;
  for (let i: u32 = 0; i < entries; i++) {
    const b = load<u32>(ptr + 12 + i * 12);
    if (i > 0 && b <= prev) return -1;
    prev = b;
  }
  return depth;
}

/** Index of the last entry whose first block <= lblk, or -1 if none. */
export function extentSearch(ptr: usize, lblk: u32): i32 {
  const entries = <i32>load<u16>(ptr + 2);
  let lo = 0;
  let hi = entries - 1;
  let found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const b = load<u32>(ptr + 12 + <usize>mid * 12);
    if (b <= lblk) { found = mid; lo = mid + 1; } else hi = mid - 1;
  }
  return found;
}
