// Checksums used by ext4 and jbd2: crc32c (Castagnoli, reflected, slice-by-8)
// for metadata_csum and jbd2 csum v2/v3, crc16 (ANSI, reflected) for the older
// uninit_bg group-descriptor checksum. Tables live in linear memory at `tablesBase`.

let crc32cTable: usize = 0; // 8 * 256 u32
let crc16Table: usize = 0; // 256 u16

export const CRC_TABLES_BYTES: usize = 8 * 1024 + 512;

export function crcInit(base: usize): void {
  crc32cTable = base;
  crc16Table = base + 8 * 1024;
  for (let i: u32 = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = (c & 1) ? (c >>> 1) ^ 0x82F63B78 : c >>> 1;
    store<u32>(crc32cTable + (i << 2), c);
  }
  for (let t: usize = 1; t < 8; t++) {
    for (let i: usize = 0; i < 256; i++) {
      const prev = load<u32>(crc32cTable + ((t - 1) << 10) + (i << 2));
      store<u32>(crc32cTable + (t << 10) + (i << 2), (prev >>> 8) ^ load<u32>(crc32cTable + ((prev & 0xff) << 2)));
    }
  }
  for (let i: u32 = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = (c & 1) ? (c >>> 1) ^ 0xA001 : c >>> 1;
    store<u16>(crc16Table + (i << 1), <u16>c);
  }
}

@inline function t32(t: usize, i: u32): u32 {
  return load<u32>(crc32cTable + (t << 10) + (<usize>(i & 0xff) << 2));
}

/** Raw crc32c update (no pre/post inversion), as the kernel's crc32c(seed, p, len). */
export function crc32cUpdate(crc: u32, ptr: usize, len: usize): u32 {
  let p = ptr;
  const end = ptr + len;
  while (p < end && (p & 7) != 0) {
    crc = (crc >>> 8) ^ t32(0, crc ^ load<u8>(p));
    p++;
  }
  while (p + 8 <= end) {
    const lo = load<u32>(p) ^ crc;
    const hi = load<u32>(p + 4);
    crc = t32(7, lo) ^ t32(6, lo >>> 8) ^ t32(5, lo >>> 16) ^ t32(4, lo >>> 24) ^
          t32(3, hi) ^ t32(2, hi >>> 8) ^ t32(1, hi >>> 16) ^ t32(0, hi >>> 24);
    p += 8;
  }
  while (p < end) {
    crc = (crc >>> 8) ^ t32(0, crc ^ load<u8>(p));
    p++;
  }
  return crc;
}

/** crc16 update as in the kernel's crc16(crc, p, len) (poly 0x8005 reflected). */
export function crc16Update(crc: u32, ptr: usize, len: usize): u32 {
  crc &= 0xffff;
  for (let p = ptr, end = ptr + len; p < end; p++) {
    crc = (crc >>> 8) ^ <u32>load<u16>(crc16Table + ((<usize>((crc ^ load<u8>(p)) & 0xff)) << 1));
  }
  return crc;
}
