// touch_atime on a read-write mount: relatime by default (atime moves when
// it is not newer than mtime or ctime, or is a day old), strictatime
// always, noatime / nodiratime / the inode's NOATIME flag never, and never
// on a read-only mount.

import { INODE_FLAGS, isDir, type Timespec } from "../format/inode.js";
import type { Ext4Inode } from "../fs/inode.js";
import { currentTime } from "../fs/xattr-write.js";
import type { VfsContext } from "./context.js";
import { dirtyInode } from "./file-write.js";

const DAY = 24 * 60 * 60;

function atimePolicy(ctx: VfsContext): { mode: "noatime" | "relatime" | "strictatime"; nodiratime: boolean } {
  let mode: "noatime" | "relatime" | "strictatime" = "relatime";
  let nodiratime = false;
  for (const o of ctx.fs.config.options.accepted) {
    if (o === "noatime" || o === "relatime" || o === "strictatime") mode = o;
    else if (o === "nodiratime") nodiratime = true;
  }
  return { mode, nodiratime };
}

const before = (a: Timespec, b: Timespec) => a.sec < b.sec || (a.sec === b.sec && a.nsec <= b.nsec);

/** atime_needs_update + relatime_need_update, then the inode written in its own handle. */
export function touchAtime(ctx: VfsContext, inode: Ext4Inode, noatimeFlag = false): void {
  const fs = ctx.fs;
  if (fs.readOnly || noatimeFlag || inode.flags & INODE_FLAGS.NOATIME) return;
  const { mode, nodiratime } = atimePolicy(ctx);
  if (mode === "noatime" || (nodiratime && isDir(inode))) return;
  const now = currentTime();
  if (mode === "relatime" && !before(inode.atime, inode.mtime) && !before(inode.atime, inode.ctime) && now.sec - inode.atime.sec < DAY) return;
  if (inode.atime.sec === now.sec && inode.atime.nsec === now.nsec) return;
  inode.atime = now;
  dirtyInode(ctx, inode);
}
