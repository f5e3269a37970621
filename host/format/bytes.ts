// Little-endian field access over byte arrays, without allocating DataViews.

export function u8(b: Uint8Array, o: number): number { return b[o]; }
export function u16(b: Uint8Array, o: number): number { return b[o] | (b[o + 1] << 8); }
export function u32(b: Uint8Array, o: number): number {
  return (b[o] | (b[o + 1] << 8) | (b[o + 2] << 16) | (b[o + 3] << 24)) >>> 0;
}
export function i32(b: Uint8Array, o: number): number {
  return b[o] | (b[o + 1] << 8) | (b[o + 2] << 16) | (b[o + 3] << 24);
}
/** A 64-bit value from two 32-bit halves; exact while below 2^53. */
export function u64(b: Uint8Array, o: number): number { return u32(b, o) + u32(b, o + 4) * 0x100000000; }
export function hiLo(hi: number, lo: number): number { return hi * 0x100000000 + lo; }

export function setU16(b: Uint8Array, o: number, v: number): void { b[o] = v & 0xff; b[o + 1] = (v >>> 8) & 0xff; }
export function setU32(b: Uint8Array, o: number, v: number): void {
  b[o] = v & 0xff; b[o + 1] = (v >>> 8) & 0xff; b[o + 2] = (v >>> 16) & 0xff; b[o + 3] = (v >>> 24) & 0xff;
}
export function setU64(b: Uint8Array, o: number, v: number): void {
  setU32(b, o, v >>> 0);
  setU32(b, o + 4, Math.floor(v / 0x100000000) >>> 0);
}

export function le32(v: number): Uint8Array { const b = new Uint8Array(4); setU32(b, 0, v); return b; }
export function le64(v: number): Uint8Array { const b = new Uint8Array(8); setU64(b, 0, v); return b; }

/** Bytes up to the first NUL, as latin1-safe text (labels, mount paths). */
export function cString(b: Uint8Array, o: number, len: number): string {
  let end = o;
  while (end < o + len && b[end] !== 0) end++;
  return new TextDecoder().decode(b.subarray(o, end));
}

export function uuidString(b: Uint8Array, o: number): string {
  const h = Array.from(b.subarray(o, o + 16), (x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
