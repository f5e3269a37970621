// What a change to a file's contents or owner takes away from it, as the VFS
// decides above ext4 (fs/attr.c setattr_should_drop_suidgid, fs/inode.c
// file_remove_privs, security/commoncap.c cap_inode_killpriv): the set-user-ID
// bit, the set-group-ID bit where it means "run as the group" (or the caller
// is outside the group), for callers without CAP_FSETID (here: other than
// root); and the file capabilities (security.capability), for every caller,
// root included, since the new contents or owner were never granted them.

import { isDir, S_IFMT } from "../format/inode.js";
import type { Ext4Inode } from "../fs/inode.js";
import { inodeXattrs } from "../fs/xattr.js";
import { removeXattr, XATTR_SET_CREDITS } from "../fs/xattr-write.js";
import type { Ext4 } from "../fs/super.js";
import type { Cred } from "./context.js";

const S_ISUID = 0o4000;
const S_ISGID = 0o2000;
const S_IXGRP = 0o010;
const S_IFREG = 0o100000;
const XATTR_INDEX_SECURITY = 6;
const CAPABILITY = "capability";

function inGroup(c: Cred, gid: number): boolean {
  return c.gid === gid || c.groups.includes(gid);
}

/** setattr_should_drop_sgid: the sgid bit goes with group execute, or when the caller is outside the group and not root. */
export function shouldDropSgid(c: Cred, inode: Ext4Inode): boolean {
  if (!(inode.mode & S_ISGID)) return false;
  if (inode.mode & S_IXGRP) return true;
  return c.uid !== 0 && !inGroup(c, inode.gid);
}

/** setattr_should_drop_suidgid: the mode bits a write or truncate by `c` clears (none for root, which has CAP_FSETID). */
export function suidgidToDrop(c: Cred, inode: Ext4Inode): number {
  if (c.uid === 0) return 0;
  return (inode.mode & S_ISUID) | (shouldDropSgid(c, inode) ? S_ISGID : 0);
}

/** cap_inode_need_killpriv: the file carries capabilities. */
export function needKillPriv(fs: Ext4, inode: Ext4Inode): boolean {
  for (const x of inodeXattrs(fs, inode)) {
    if (x.nameIndex === XATTR_INDEX_SECURITY && x.name === `security.${CAPABILITY}`) return true;
  }
  return false;
}

/** cap_inode_killpriv: security.capability removed, in an xattr handle of its own (as ext4_xattr_set starts one). */
export function killPriv(fs: Ext4, inode: Ext4Inode): void {
  const h = fs.startHandle(XATTR_SET_CREDITS);
  try {
    removeXattr(h, fs, inode, XATTR_INDEX_SECURITY, CAPABILITY);
  } finally {
    h.stop();
  }
}

/**
 * file_remove_privs for write, truncate and fallocate: the capabilities
 * removed now, and the mode the caller must store (the inode's own when
 * nothing changes). Skipped once S_NOSEC says nothing is there.
 */
export function removePrivs(fs: Ext4, c: Cred, inode: Ext4Inode): number {
  if (inode.noSec || (inode.mode & S_IFMT) !== S_IFREG) return inode.mode;
  const mode = inode.mode & ~suidgidToDrop(c, inode);
  const kill = needKillPriv(fs, inode);
  if (kill) killPriv(fs, inode);
  // Nothing left to remove by anyone: later writes skip the check (a non-root sgid without group execute stays checked).
  if (!kill && !(mode & (S_ISUID | S_ISGID))) inode.noSec = true;
  return mode;
}

/** chown_common's ATTR_KILL_PRIV: a non-directory whose owner changes loses its capabilities. */
export function chownKillPriv(fs: Ext4, inode: Ext4Inode): void {
  if (isDir(inode)) return;
  if (needKillPriv(fs, inode)) killPriv(fs, inode);
}
