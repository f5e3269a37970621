// Setting POSIX ACLs (fs/ext4/acl.c, ext4_set_acl): an access ACL the mode
// bits say in full is no ACL (posix_acl_update_mode), and the mode takes the
// ACL's permission bits; a default ACL exists only on directories.

import { Ext4Error } from "../errors.js";
import { aclEquivMode, aclToDisk, type AclEntry } from "../format/acl.js";
import { type Inode, isDir } from "../format/inode.js";
import { XATTR_INDEX_POSIX_ACL_ACCESS, XATTR_INDEX_POSIX_ACL_DEFAULT } from "../format/xattr.js";
import type { Handle } from "../journal/handle.js";
import { markInodeDirty } from "./inode-write.js";
import type { Ext4 } from "./super.js";
import { currentTime, setXattr } from "./xattr-write.js";

export type AclType = "access" | "default";

/**
 * Sets (acl) or removes (null) the inode's ACL of `type`, already checked
 * with aclCheckValid. The caller acts with CAP_FSETID (the set-group-ID bit
 * is kept, as for root).
 */
export function setPosixAcl(handle: Handle, fs: Ext4, inode: Inode, type: AclType, acl: AclEntry[] | null): void {
  let mode = inode.mode;
  if (type === "access" && acl) {
    const eq = aclEquivMode(acl, inode.mode);
    if (eq.equivalent) acl = null;
    mode = eq.mode;
  }
  if (type === "default" && !isDir(inode)) {
    if (acl) throw new Ext4Error("EACCES", "a default ACL is only for directories", { ino: inode.ino });
    return;
  }
  const index = type === "access" ? XATTR_INDEX_POSIX_ACL_ACCESS : XATTR_INDEX_POSIX_ACL_DEFAULT;
  setXattr(handle, fs, inode, index, "", acl ? aclToDisk(acl) : null);
  if (mode !== inode.mode) {
    inode.mode = mode;
    inode.ctime = currentTime();
    markInodeDirty(handle, fs, inode);
  }
}
