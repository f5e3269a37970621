// POSIX ACLs: ext4 stores system.posix_acl_{access,default} in its own
// compact encoding (version 1; 4-byte entries for USER_OBJ, GROUP_OBJ, MASK
// and OTHER, 8-byte entries with an id for USER and GROUP). getxattr(2)
// returns the generic xattr encoding (version 2; every entry tag u16, perm
// u16, id u32, ACL_UNDEFINED_ID for the entries without one). Both little endian.

import { corrupted } from "../errors.js";
import { u16, u32 } from "./bytes.js";

export const EXT4_ACL_VERSION = 1;
export const POSIX_ACL_XATTR_VERSION = 2;
export const ACL_UNDEFINED_ID = 0xffffffff;

export const ACL_USER_OBJ = 0x01;
export const ACL_USER = 0x02;
export const ACL_GROUP_OBJ = 0x04;
export const ACL_GROUP = 0x08;
export const ACL_MASK = 0x10;
export const ACL_OTHER = 0x20;

export interface AclEntry { tag: number; perm: number; id: number }

/**
 * Decodes ext4's on-disk ACL. null for a header with no entries (the kernel
 * treats that as no ACL). A bad version, size or tag is EFSCORRUPTED (the
 * kernel's ext4_acl_from_disk refuses the same with EINVAL).
 */
export function aclFromDisk(b: Uint8Array, where: { ino?: number; block?: number } = {}): AclEntry[] | null {
  if (b.length < 4) throw corrupted(`ACL of ${b.length} bytes is shorter than its header`, where);
  if (u32(b, 0) !== EXT4_ACL_VERSION) throw corrupted(`ACL version ${u32(b, 0)} is not ${EXT4_ACL_VERSION}`, where);
  const out: AclEntry[] = [];
  let p = 4;
  while (p < b.length) {
    if (p + 4 > b.length) throw corrupted("ACL entry runs past the value", where);
    const tag = u16(b, p);
    const perm = u16(b, p + 2);
    switch (tag) {
      case ACL_USER_OBJ: case ACL_GROUP_OBJ: case ACL_MASK: case ACL_OTHER:
        out.push({ tag, perm, id: ACL_UNDEFINED_ID });
        p += 4;
        break;
      case ACL_USER: case ACL_GROUP:
        if (p + 8 > b.length) throw corrupted("ACL entry runs past the value", where);
        out.push({ tag, perm, id: u32(b, p + 4) });
        p += 8;
        break;
      default:
        throw corrupted(`ACL entry has unknown tag 0x${tag.toString(16)}`, where);
    }
  }
  return out.length ? out : null;
}

/** The posix_acl_xattr encoding getxattr(2) returns. */
export function aclToXattr(entries: AclEntry[]): Uint8Array {
  const out = new Uint8Array(4 + 8 * entries.length);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, POSIX_ACL_XATTR_VERSION, true);
  entries.forEach((e, i) => {
    dv.setUint16(4 + 8 * i, e.tag, true);
    dv.setUint16(6 + 8 * i, e.perm, true);
    dv.setUint32(8 + 8 * i, e.id, true);
  });
  return out;
}
