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

/*
 * The process's ids are read at most once per volume operation (credScope,
 * entered by every Volume method). The rule that makes it exact: an
 * operation runs synchronously and calls no user code, so nothing can change
 * the ids (setuid, setgroups) between its first check and its last; between
 * two operations they may change, so each operation reads them afresh.
 * Outside a scope every call reads them. A caller that never changes its
 * ids may hold one scope across many operations (the CLI's put does). The supplementary groups, the
 * dearest to read (getgroups builds an array per call), are read only when a
 * check needs them: most never do (the owner or root decides first).
 */

let scopeDepth = 0;
let effective: Cred | undefined;
let real: Cred | undefined;

/** Runs fn as one operation: the credentials it reads are read once. */
export function credScope<T>(fn: () => T): T {
  if (scopeDepth++ === 0) effective = real = undefined;
  try {
    return fn();
  } finally {
    if (--scopeDepth === 0) effective = real = undefined;
  }
}

type IdFn = (() => number) | undefined;

/** uid and gid read now, groups when first asked for. */
class ProcessCred implements Cred {
  private g: number[] | undefined;
  readonly uid: number;
  readonly gid: number;
  constructor(uid: IdFn, gid: IdFn, private readonly extraGid: boolean) {
    this.uid = readId(uid);
    this.gid = readId(gid);
  }
  get groups(): number[] {
    if (this.g) return this.g;
    const p = globalThis.process;
    let groups: number[] = [];
    try { if (typeof p?.getgroups === "function") groups = p.getgroups(); } catch { /* none */ }
    if (this.extraGid && !groups.includes(this.gid)) groups = [...groups, this.gid];
    return (this.g = groups);
  }
}

/** Deno throws without --allow-sys (it has no ids to give): root, as in a runtime without them. */
function readId(fn: IdFn): number {
  try { return typeof fn === "function" ? fn.call(globalThis.process) : 0; } catch { return 0; }
}

/** The effective ids of this process (the kernel's fsuid / fsgid); root in runtimes without them. */
export function processCred(): Cred {
  if (scopeDepth > 0 && effective) return effective;
  const p = globalThis.process;
  const c = new ProcessCred(p?.geteuid, p?.getegid, false);
  if (scopeDepth > 0) effective = c;
  return c;
}

/**
 * The real ids, as access(2) checks them, the real gid counted among the
 * groups; null in a runtime without ids or that refuses them (counted as root).
 */
export function realCred(): Cred | null {
  if (scopeDepth > 0 && real) return real;
  const p = globalThis.process;
  if (typeof p?.getuid !== "function") return null;
  try {
    p.getuid();
  } catch {
    return null; // Deno without --allow-sys
  }
  const c = new ProcessCred(p.getuid, p.getgid, true);
  if (scopeDepth > 0) real = c;
  return c;
}
