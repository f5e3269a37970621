// setxattr(2) and removexattr(2) above ext4 (fs/xattr.c): names resolved to
// ext4's handlers (user., trusted., security., gnu., the two POSIX ACLs),
// the VFS limits (ERANGE, E2BIG), xattr_permission's rules, ACL values
// parsed and checked, and one handle per call.

import { Ext4Error } from "../errors.js";
import { aclCheckValid, aclFromXattr } from "../format/acl.js";
import { type Inode, INODE_FLAGS, isDir, isLnk, isReg } from "../format/inode.js";
import { XATTR_NAME_MAX, XATTR_SIZE_MAX } from "../format/xattr.js";
import { setPosixAcl, type AclType } from "../fs/acl-write.js";
import type { Ext4 } from "../fs/super.js";
import { setXattr, XATTR_SET_CREDITS, type XattrSetFlags } from "../fs/xattr-write.js";

const PREFIXES: [string, number][] = [["user.", 1], ["trusted.", 4], ["security.", 6], ["gnu.", 10]];
const ACL_NAMES: Record<string, AclType> = { "system.posix_acl_access": "access", "system.posix_acl_default": "default" };

type Resolved = { acl: AclType } | { index: number; suffix: Uint8Array };

/**
 * What setxattr(2) refuses before it looks the path up (setxattr_copy):
 * a name empty or over XATTR_NAME_MAX bytes (ERANGE), a value over
 * XATTR_SIZE_MAX (E2BIG).
 */
export function checkXattrArgs(name: string, value?: Uint8Array): void {
  const bytes = new TextEncoder().encode(name);
  if (bytes.length === 0 || bytes.length > XATTR_NAME_MAX) throw new Ext4Error("ERANGE", `xattr name of ${bytes.length} bytes (1 to ${XATTR_NAME_MAX})`);
  if (bytes.includes(0)) throw new Ext4Error("EINVAL", "xattr name contains a NUL byte");
  if (value && value.length > XATTR_SIZE_MAX) throw new Ext4Error("E2BIG", `xattr value of ${value.length} bytes is larger than ${XATTR_SIZE_MAX}`);
}

/** xattr_resolve_name: EOPNOTSUPP for a name no handler takes, EINVAL for a bare prefix. */
function resolveName(fs: Ext4, name: string): Resolved {
  const acl = ACL_NAMES[name];
  if (acl) {
    if (!aclEnabled(fs)) throw new Ext4Error("EOPNOTSUPP", "operation not supported: mounted with noacl");
    return { acl };
  }
  for (const [prefix, index] of PREFIXES) {
    if (!name.startsWith(prefix)) continue;
    if (name.length === prefix.length) throw new Ext4Error("EINVAL", `xattr name '${name}' has no name after its prefix`);
    return { index, suffix: new TextEncoder().encode(name.slice(prefix.length)) };
  }
  throw new Ext4Error("EOPNOTSUPP", `operation not supported: no xattr namespace for '${name}'`);
}

/** ACLs are on unless the mount says noacl (the last of acl/noacl counts). */
function aclEnabled(fs: Ext4): boolean {
  const opts = fs.config.options.accepted.filter((o) => o === "acl" || o === "noacl");
  return opts[opts.length - 1] !== "noacl";
}

/**
 * mnt_want_write (EROFS), then xattr_permission for writes: immutable and
 * append-only inodes, user.* only on files and directories (EPERM); then the
 * name's handler.
 */
function prepare(fs: Ext4, inode: Inode, name: string): Resolved {
  if (fs.readOnly) throw new Ext4Error("EROFS", "read-only file system");
  if (inode.flags & (INODE_FLAGS.IMMUTABLE | INODE_FLAGS.APPEND)) throw new Ext4Error("EPERM", "operation not permitted: immutable or append-only");
  if (name.startsWith("user.") && !isReg(inode) && !isDir(inode)) throw new Ext4Error("EPERM", "operation not permitted: user.* xattrs are for files and directories");
  const r = resolveName(fs, name);
  // ext4's symlinks have no set_acl.
  if ("acl" in r && isLnk(inode)) throw new Ext4Error("EOPNOTSUPP", "operation not supported: ACLs on a symbolic link");
  return r;
}

/** setxattr(2) on an inode: `value` as getxattr returns it (ACLs in the xattr encoding). */
export function vfsSetxattr(fs: Ext4, inode: Inode, name: string, value: Uint8Array, flags: XattrSetFlags = {}): void {
  checkXattrArgs(name, value);
  const r = prepare(fs, inode, name);
  if ("acl" in r) {
    const acl = aclFromXattr(value);
    if (acl) aclCheckValid(acl);
    withHandle(fs, inode, (h) => setPosixAcl(h, fs, inode, r.acl, acl));
    return;
  }
  withHandle(fs, inode, (h) => setXattr(h, fs, inode, r.index, r.suffix, value, flags));
}

/** removexattr(2) on an inode: ENODATA when absent (an absent ACL is removed quietly, as vfs_remove_acl). */
export function vfsRemovexattr(fs: Ext4, inode: Inode, name: string): void {
  checkXattrArgs(name);
  const r = prepare(fs, inode, name);
  if ("acl" in r) {
    withHandle(fs, inode, (h) => setPosixAcl(h, fs, inode, r.acl, null));
    return;
  }
  withHandle(fs, inode, (h) => setXattr(h, fs, inode, r.index, r.suffix, null, { replace: true }));
}

function withHandle(fs: Ext4, inode: Inode, fn: (h: ReturnType<Ext4["startHandle"]>) => void): void {
  // A new security.* xattr may be a capability a later write must remove (S_NOSEC cleared).
  if ("noSec" in inode) inode.noSec = false;
  const h = fs.startHandle(XATTR_SET_CREDITS);
  try {
    fn(h);
  } finally {
    h.stop();
  }
}
