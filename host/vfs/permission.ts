// access(2) for the calling process, as Linux decides it (inode_permission,
// generic_permission, posix_acl_permission): read-only and immutable checks
// for writes, then owner / ACL / group / other bits, then root's overrides.

import { Ext4Error } from "../errors.js";
import { ACL_GROUP, ACL_GROUP_OBJ, ACL_MASK, ACL_OTHER, ACL_USER, ACL_USER_OBJ, aclFromDisk, type AclEntry } from "../format/acl.js";
import { Inode, INODE_FLAGS, isDir, isLnk, isReg } from "../format/inode.js";
import { XATTR_INDEX_POSIX_ACL_ACCESS } from "../format/xattr.js";
import type { Ext4 } from "../fs/super.js";
import { inodeXattrs } from "../fs/xattr.js";
import { realCred } from "./context.js";

export const F_OK = 0;
export const X_OK = 1;
export const W_OK = 2;
export const R_OK = 4;

/** node's validation of access()'s mode argument (its own error texts). */
export function accessMode(mode: unknown): number {
  if (mode === undefined || mode === null) return F_OK;
  if (typeof mode !== "number" || !Number.isInteger(mode)) {
    throw Object.assign(new TypeError("mode must be int32 or null/undefined"), { code: "ERR_INVALID_ARG_TYPE" });
  }
  if (mode < 0 || mode > 7) throw Object.assign(new RangeError("mode is out of range: >= 0 && <= 7"), { code: "ERR_OUT_OF_RANGE" });
  return mode;
}

interface Creds { uid: number; inGroup(gid: number): boolean }

const ROOT: Creds = { uid: 0, inGroup: (gid) => gid === 0 };

/** access(2) checks the real uid and gid (read once per volume operation: see context.ts). Runtimes without them count as root. */
function callerCreds(): Creds {
  const c = realCred();
  if (!c) return ROOT;
  return { uid: c.uid, inGroup: (gid) => c.groups.includes(gid) };
}

/** Throws EROFS, EPERM or EACCES as access(path, want) would; F_OK only needs the inode to exist. */
export function checkAccess(fs: Ext4, inode: Inode, want: number): void {
  if (want & W_OK) {
    // sb_permission: devices and FIFOs stay writable on a read-only filesystem.
    if (fs.readOnly && (isReg(inode) || isDir(inode) || isLnk(inode))) throw new Ext4Error("EROFS", "read-only file system");
    if (inode.flags & INODE_FLAGS.IMMUTABLE) throw new Ext4Error("EPERM", "operation not permitted");
  }
  want &= R_OK | W_OK | X_OK;
  if (want === 0) return;
  const creds = callerCreds();
  // Root: CAP_DAC_READ_SEARCH / CAP_DAC_OVERRIDE, except that execute needs some x bit on a non-directory.
  // Where that grants it, the bits (and an ACL read) could only agree: decided first.
  if (creds.uid === 0 && (isDir(inode) || !(want & X_OK) || (inode.mode & 0o111))) return;
  if (bitsAllow(fs, inode, want, creds)) return;
  throw new Ext4Error("EACCES", "permission denied");
}

function bitsAllow(fs: Ext4, inode: Inode, want: number, c: Creds): boolean {
  const mode = inode.mode;
  if (c.uid === inode.uid) return ((mode >> 6) & want) === want;
  if (mode & 0o070) {
    const acl = accessAcl(fs, inode);
    if (acl) return aclAllows(acl, inode, want, c);
  }
  if (c.inGroup(inode.gid)) return ((mode >> 3) & want) === want;
  return (mode & want) === want;
}

function accessAcl(fs: Ext4, inode: Inode): AclEntry[] | null {
  for (const x of inodeXattrs(fs, inode)) {
    if (x.nameIndex === XATTR_INDEX_POSIX_ACL_ACCESS) return aclFromDisk(x.value, { ino: inode.ino });
  }
  return null;
}

/** posix_acl_permission: named entries and the owning group are limited by the mask. */
function aclAllows(acl: AclEntry[], inode: Inode, want: number, c: Creds): boolean {
  const mask = acl.find((e) => e.tag === ACL_MASK);
  const masked = (perm: number) => ((mask ? perm & mask.perm : perm) & want) === want;
  let groupMatched = false;
  for (const e of acl) {
    switch (e.tag) {
      case ACL_USER_OBJ: if (c.uid === inode.uid) return (e.perm & want) === want; break;
      case ACL_USER: if (c.uid === e.id) return masked(e.perm); break;
      case ACL_GROUP_OBJ: case ACL_GROUP: {
        const gid = e.tag === ACL_GROUP_OBJ ? inode.gid : e.id;
        if (c.inGroup(gid)) {
          // The first matching group that grants it decides, through the mask.
          if ((e.perm & want) === want) return masked(e.perm);
          groupMatched = true;
        }
        break;
      }
      case ACL_OTHER: return !groupMatched && (e.perm & want) === want;
    }
  }
  return false;
}
