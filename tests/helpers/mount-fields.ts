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
