// copyFileSync within the image, as libuv's uv__fs_copyfile does it: the
// source opened read-only, the destination "w" (or "wx" with
// COPYFILE_EXCL) with the source's mode, nothing done when both are the
// same file, the destination truncated and given the source's mode, then
// the bytes copied in chunks (ext4 cannot clone: COPYFILE_FICLONE falls
// back to copying, COPYFILE_FICLONE_FORCE is EOPNOTSUPP).

import { Ext4Error } from "../errors.js";
import { isDir } from "../format/inode.js";
import type { VfsContext } from "./context.js";
import type { FileTable } from "./file-table.js";
import { vfsChmod, vfsTruncate, vfsWrite } from "./file-write.js";
import { O_CREAT, O_EXCL, O_RDONLY, O_WRONLY } from "./open-flags.js";
import type { PathLike } from "./path-walk.js";

export const COPYFILE_EXCL = 1;
export const COPYFILE_FICLONE = 2;
export const COPYFILE_FICLONE_FORCE = 4;

const CHUNK = 1 << 20;

export interface CopyOps {
  ctx: VfsContext;
  files: FileTable;
  open(path: PathLike, flags: number, mode: number): number;
  read(fd: number, buf: Uint8Array, pos: number): number;
  close(fd: number): void;
}

export function copyFile(ops: CopyOps, src: PathLike, dest: PathLike, mode: number): void {
  if (mode & COPYFILE_FICLONE_FORCE) throw new Ext4Error("EOPNOTSUPP", "operation not supported on socket");
  const sfd = ops.open(src, O_RDONLY, 0);
  try {
    const sf = ops.files.get(sfd);
    if (isDir(sf.inode)) throw new Ext4Error("EISDIR", "illegal operation on a directory");
    const perm = sf.inode.mode & 0o7777;
    // The umask does not apply: libuv fchmods the destination to the source's mode.
    const dfd = ops.open(dest, O_WRONLY | O_CREAT | (mode & COPYFILE_EXCL ? O_EXCL : 0), perm);
    try {
      const df = ops.files.get(dfd);
      if (df.inode.ino === sf.inode.ino) return;
      vfsTruncate(ops.ctx, df.inode, 0);
      if ((df.inode.mode & 0o7777) !== perm) vfsChmod(ops.ctx, df.inode, perm);
      const size = sf.inode.size;
      const buf = new Uint8Array(Math.min(CHUNK, Math.max(1, size)));
      for (let pos = 0; pos < size; ) {
        const n = ops.read(sfd, buf.subarray(0, Math.min(buf.length, size - pos)), pos);
        if (n === 0) break;
        for (let done = 0; done < n; ) done += vfsWrite(ops.ctx, df, buf.subarray(done, n), pos + done);
        pos += n;
      }
    } finally {
      ops.close(dfd);
    }
  } finally {
    ops.close(sfd);
  }
}


