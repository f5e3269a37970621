// What the write surface's modules share: the filesystem, the buffered I/O
// path of an inode, the caller's credentials and umask, and the inodes with
// data written through this volume (what sync and unmount write back).

import type { BufferedIO } from "../buffered/io.js";
import type { Ext4Inode } from "../fs/inode.js";
import type { Ext4 } from "../fs/super.js";

export interface Cred { uid: number; gid: number; groups: number[] }

export interface VfsContext {
  readonly fs: Ext4;
  /** The buffered I/O path the inode takes (selectPath). */
  io(inode: Ext4Inode): BufferedIO;
  /** The creator's credentials (fsuid / fsgid): the process's effective ids, root where a runtime has none. */
  cred(): Cred;
  /** Applied to the mode of every file, directory and node created (the process umask as the kernel applies it). */
  umask: number;
  /** Inodes written through this volume whose data may still be dirty. */
  readonly written: Set<Ext4Inode>;
}

/** The effective ids of this process (the kernel's fsuid / fsgid); root in runtimes without them. */
export function processCred(): Cred {
  const p = globalThis.process;
  const uid = typeof p?.geteuid === "function" ? p.geteuid() : 0;
  const gid = typeof p?.getegid === "function" ? p.getegid() : 0;
  const groups = typeof p?.getgroups === "function" ? p.getgroups() : [];
  return { uid, gid, groups };
}
