// The volume's descriptor table: an open file (the kernel's struct file)
// holds its inode (iget), its position, readahead state and access mode.
// EBADF for a descriptor that is not open, or not open for what is asked.

import { Ext4Error } from "../errors.js";
import type { Ext4Inode } from "../fs/inode.js";
import type { ReadaheadState } from "../buffered/readahead.js";
import type { FileMode } from "./open-flags.js";

export interface OpenFile {
  inode: Ext4Inode; pos: number; ra: ReadaheadState; path: string;
  mode: FileMode;
  /** Drop-behind (openInode's dropBehind): the page from which the file's cached folios are still to be released. */
  dropFrom?: number;
}

export class FileTable {
  private readonly files = new Map<number, OpenFile>();
  private nextFd = 3;

  add(f: OpenFile): number {
    const fd = this.nextFd++;
    this.files.set(fd, f);
    return fd;
  }

  /** The open file of `fd` (EBADF if none). */
  get(fd: number): OpenFile {
    const f = typeof fd === "number" ? this.files.get(fd) : undefined;
    if (!f) throw new Ext4Error("EBADF", `bad file descriptor ${fd}`);
    return f;
  }

  /** read(2) on a descriptor not open for reading is EBADF. */
  readable(fd: number): OpenFile {
    const f = this.get(fd);
    if (!f.mode.readable) throw new Ext4Error("EBADF", `file descriptor ${fd} is not open for reading`);
    return f;
  }

  /** write(2) (and ftruncate's EINVAL is the caller's) on a descriptor not open for writing is EBADF. */
  writable(fd: number): OpenFile {
    const f = this.get(fd);
    if (!f.mode.writable) throw new Ext4Error("EBADF", `file descriptor ${fd} is not open for writing`);
    return f;
  }

  remove(fd: number): OpenFile {
    const f = this.get(fd);
    this.files.delete(fd);
    return f;
  }

  /** Every open file, for unmount to close. */
  all(): [number, OpenFile][] { return [...this.files]; }

  /** How many descriptors hold this inode (an unlinked file is freed when the last closes). */
  holders(ino: number): number {
    let n = 0;
    for (const f of this.files.values()) if (f.inode.ino === ino) n++;
    return n;
  }
}
