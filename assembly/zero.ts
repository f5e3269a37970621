// Range zeroing and zero scans, used for holes, unwritten extents and EOF tails.

export function zeroRange(ptr: usize, len: usize): void {
  memory.fill(ptr, 0, len);
}

/** 1 if all `len` bytes at ptr are zero. */
export function isZero(ptr: usize, len: usize): u32 {
  let p = ptr;
  const end = ptr + len;
  while (p < end && (p & 7) != 0) { if (load<u8>(p)) return 0; p++; }
  while (p + 8 <= end) { if (load<u64>(p)) return 0; p += 8; }
  while (p < end) { if (load<u8>(p)) return 0; p++; }
  return 1;
}
