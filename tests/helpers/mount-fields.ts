// What a read-write mount changes by itself, whatever the caller does
// (ext4_setup_super / ext4_commit_super: mount and write times, mount count,
// lifetime writes, and so the checksum), taken out of the primary superblock,
// so "this refused call wrote nothing" can be checked byte for byte.

import * as fs from "node:fs";
import { createHash } from "node:crypto";

const MOUNT_FIELDS: [offset: number, len: number][] = [[0x2c, 8], [0x34, 2], [0x178, 8], [0x274, 2], [0x3fc, 4]];

/** The image's bytes with the mount's own superblock fields zeroed. */
export function imageOutsideMountFields(img: string): Buffer {
  const b = fs.readFileSync(img);
  for (const [o, n] of MOUNT_FIELDS) b.fill(0, 1024 + o, 1024 + o + n);
  return b;
}

export function shaOutsideMountFields(img: string): string {
  return createHash("sha256").update(imageOutsideMountFields(img)).digest("hex");
}

/** s_state and the error record (s_error_count .. s_last_error_func, their time and code bytes): what an ext4_error writes. */
const ERROR_FIELDS: [offset: number, len: number][] = [[0x3a, 2], [0x194, 0x6c], [0x278, 4]];

/** As shaOutsideMountFields, with the error record left out too (a refused call that recorded an ext4_error). */
export function shaOutsideMountAndErrorFields(img: string): string {
  const b = imageOutsideMountFields(img);
  for (const [o, n] of ERROR_FIELDS) b.fill(0, 1024 + o, 1024 + o + n);
  return createHash("sha256").update(b).digest("hex");
}

/** s_state's ERROR_FS bit and s_error_count, as on disk. */
export function errorRecord(img: string): { errorFs: boolean; count: number } {
  const b = fs.readFileSync(img).subarray(1024, 2048);
  return { errorFs: (b.readUInt16LE(0x3a) & 2) !== 0, count: b.readUInt32LE(0x194) };
}
