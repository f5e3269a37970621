// POSIX ACLs: ext4 stores system.posix_acl_{access,default} in its own
// compact encoding (version 1; 4-byte entries for USER_OBJ, GROUP_OBJ, MASK
// and OTHER, 8-byte entries with an id for USER and GROUP). getxattr(2)
// returns the generic xattr encoding (version 2; every entry tag u16, perm
// u16, id u32, ACL_UNDEFINED_ID for the entries without one). Both little endian.

import { corrupted, Ext4Error } from "../errors.js";
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

// ---- the write side (posix_acl_from_xattr, posix_acl_valid, ext4_acl_to_disk) ----

export const ACL_READ = 4;
export const ACL_WRITE = 2;
export const ACL_EXECUTE = 1;

/**
 * Parses the xattr encoding setxattr(2) is given, as posix_acl_from_xattr:
 * null for a header without entries (setting it removes the ACL). A wrong
 * version is EOPNOTSUPP, a bad size or tag EINVAL, as the kernel answers.
 */
export function aclFromXattr(b: Uint8Array): AclEntry[] | null {
  if (b.length < 4) throw new Ext4Error("EINVAL", "ACL xattr shorter than its header");
  if (u32(b, 0) !== POSIX_ACL_XATTR_VERSION) throw new Ext4Error("EOPNOTSUPP", `ACL xattr version ${u32(b, 0)} is not ${POSIX_ACL_XATTR_VERSION}`);
  if ((b.length - 4) % 8 !== 0) throw new Ext4Error("EINVAL", "ACL xattr size is not a whole number of entries");
  const out: AclEntry[] = [];
  for (let p = 4; p < b.length; p += 8) {
    const tag = u16(b, p);
    const perm = u16(b, p + 2);
    switch (tag) {
      case ACL_USER_OBJ: case ACL_GROUP_OBJ: case ACL_MASK: case ACL_OTHER:
        out.push({ tag, perm, id: ACL_UNDEFINED_ID });
        break;
      case ACL_USER: case ACL_GROUP:
        out.push({ tag, perm, id: u32(b, p + 4) });
        break;
      default:
        throw new Ext4Error("EINVAL", `ACL entry has unknown tag 0x${tag.toString(16)}`);
    }
  }
  return out.length ? out : null;
}

/**
 * posix_acl_valid: USER_OBJ, USER..., GROUP_OBJ, GROUP..., MASK (required
 * when there are named entries), OTHER, in that order; permissions rwx only.
 */
export function aclCheckValid(acl: AclEntry[]): void {
  const bad = (why: string) => new Ext4Error("EINVAL", `invalid ACL: ${why}`);
  type State = "user_obj" | "user" | "group" | "other" | "done";
  let state: State = "user_obj";
  let needsMask = false;
  for (const e of acl) {
    if (e.perm & ~(ACL_READ | ACL_WRITE | ACL_EXECUTE)) throw bad(`permission bits 0x${e.perm.toString(16)}`);
    switch (e.tag) {
      case ACL_USER_OBJ: if (state !== "user_obj") throw bad("USER_OBJ out of place"); state = "user"; break;
      case ACL_USER: if (state !== "user") throw bad("USER out of place"); needsMask = true; break;
      case ACL_GROUP_OBJ: if (state !== "user") throw bad("GROUP_OBJ out of place"); state = "group"; break;
      case ACL_GROUP: if (state !== "group") throw bad("GROUP out of place"); needsMask = true; break;
      case ACL_MASK: if (state !== "group") throw bad("MASK out of place"); state = "other"; break;
      case ACL_OTHER:
        if (state === "other" || (state === "group" && !needsMask)) { state = "done"; break; }
        throw bad(needsMask ? "named entries without a MASK" : "OTHER out of place");
      default: throw bad(`tag 0x${e.tag.toString(16)}`);
    }
  }
  if (state !== "done") throw bad("incomplete");
}

/**
 * posix_acl_equiv_mode: the permission bits the ACL gives the mode (MASK in
 * place of the group bits), and whether the mode alone says it all.
 */
export function aclEquivMode(acl: AclEntry[], mode: number): { mode: number; equivalent: boolean } {
  let bits = 0;
  let equivalent = true;
  for (const e of acl) {
    switch (e.tag) {
      case ACL_USER_OBJ: bits |= (e.perm & 7) << 6; break;
      case ACL_GROUP_OBJ: bits |= (e.perm & 7) << 3; break;
      case ACL_OTHER: bits |= e.perm & 7; break;
      case ACL_MASK: bits = (bits & ~0o070) | ((e.perm & 7) << 3); equivalent = false; break;
      default: equivalent = false;
    }
  }
  return { mode: (mode & ~0o777) | bits, equivalent };
}

/** ext4_acl_to_disk: version 1, short entries for the objects and the mask, an id for named ones. */
export function aclToDisk(acl: AclEntry[]): Uint8Array {
  let size = 4;
  for (const e of acl) size += e.tag === ACL_USER || e.tag === ACL_GROUP ? 8 : 4;
  const out = new Uint8Array(size);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, EXT4_ACL_VERSION, true);
  let p = 4;
  for (const e of acl) {
    dv.setUint16(p, e.tag, true);
    dv.setUint16(p + 2, e.perm, true);
    if (e.tag === ACL_USER || e.tag === ACL_GROUP) {
      dv.setUint32(p + 4, e.id, true);
      p += 8;
    } else {
      p += 4;
    }
  }
  return out;
}
