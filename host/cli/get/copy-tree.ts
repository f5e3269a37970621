// Copying a file or tree out of a mounted image onto the host, the way
// `tar -p` restores it: bytes with holes, symlinks, hard links (by inode
// number within this copy), FIFOs and device nodes, user.* xattrs, then
// owners (root only), all twelve mode bits and times.
//
// Order matters. Everything is created first with private modes (0600/0700),
// so a read-only directory never blocks its own contents. Then xattrs are set
// in one batch (user.* needs write permission for non-root), then metadata in
// post-order: lchown before chmod (chown clears setuid/setgid), times last,
// and a directory only after all its entries, since creating them moved its
// mtime.

import * as fs from "node:fs";
import type { Inode } from "../../format/inode.js";
import type { BigIntStats } from "../../vfs/stats.js";
import type { Volume } from "../../vfs/volume.js";
import { Ext4Error } from "../../errors.js";
import { CliError } from "../errors.js";
import { joinPath, majorMinor } from "../format.js";
import { copyFileData } from "./file-data.js";
import { isPosixAcl, NodeMaker, restoreXattrs, type XattrJob } from "./host-tools.js";
import { HostPaths } from "./host-path.js";
import type { Progress } from "./progress.js";
import { utimesArg } from "./times.js";

export interface CopyOptions {
  /** Replace existing non-directories at the destination (directories are merged). */
  force: boolean;
  /** Text path on the destination filesystem where a staging directory may be made (for FIFOs, devices). */
  stagingParent: string;
  progress: Progress;
  /** Called with each failure as it happens (the copy goes on). */
  onFailure?: (f: CopyFailure) => void;
}

interface Fixup {
  path: Buffer;
  mode: number;
  uid: number;
  gid: number;
  atimeNs: bigint;
  mtimeNs: bigint;
  symlink: boolean;
  /** user.* xattrs wait for the setfattr run at the end, so this must too. */
  xattrs?: boolean;
}

/** An entry that could not be copied: its path in the image and why. */
export interface CopyFailure { path: string; code: string; message: string }

export interface CopyResult {
  entries: number;
  bytes: number;
  /** One line each, for stderr. */
  warnings: string[];
  failures: CopyFailure[];
}

const isRoot = () => typeof process.getuid === "function" && process.getuid() === 0;
const PATH_MAX = 4096;

/** A directory being copied, shared by the steps of all its entries. */
interface DirCtx { src: Buffer; dst: Buffer; inFresh: boolean }

/**
 * One step of the walk: copy an entry, or (after a directory's entries) queue
 * its metadata. An entry is its directory and its name: the paths are joined
 * when its turn comes, so a directory of n entries waits on the stack as n
 * names, not 2n joined paths.
 */
type Step = { dir: DirCtx; name: Uint8Array; ino: number } | { top: Inode; src: Buffer; dst: Buffer } | { done: Fixup; dirIno: number };
type CopyStep = { src: Buffer; dst: Buffer; inode: Inode | null; ino: number; top: boolean; inFresh: boolean };

export class TreeCopier {
  private readonly firstNameOf = new Map<bigint, Buffer>();
  private readonly fixups: Fixup[] = [];
  private readonly xattrJobs: XattrJob[] = [];
  private readonly aclJobs: XattrJob[] = [];
  private readonly nodes: NodeMaker;
  private readonly host = new HostPaths();
  private readonly root = isRoot();
  private skipped = { devices: 0, sockets: 0, xattrsOnSpecial: 0, longPathXattrs: 0, otherNamespaces: new Set<string>() };
  private entries = 0;
  private readonly failures: CopyFailure[] = [];
  /**
   * Directories met so far, by inode number: true while on the current path
   * (an ancestor), false once done. A hard link to a directory (a corrupt
   * image) is then copied once: an ancestor met again would loop forever, any
   * other repeat could multiply the tree, so both are failures.
   */
  private readonly dirsSeen = new Map<number, boolean>();

  constructor(private readonly vol: Volume, private readonly opts: CopyOptions) {
    this.nodes = new NodeMaker(opts.stagingParent);
  }

  /**
   * Copies src (a path in the image) to dst (an absolute host path that is the
   * copy itself). The tree is walked by directory inode, so its depth is not
   * limited by PATH_MAX on either side. A failure on the top entry throws; below
   * it, a failed entry is recorded and the copy goes on (as debugfs rdump does).
   */
  run(src: Buffer, dst: Buffer): CopyResult {
    // Long paths chdir (HostPaths), during the walk too (as root metadata is set as it goes): whatever escapes, the cwd is put back.
    try {
      return this.runInner(src, dst);
    } finally {
      this.host.restore();
    }
  }

  private runInner(src: Buffer, dst: Buffer): CopyResult {
    const top = this.vol.inodeOf(src);
    try {
      this.walk({ top, src, dst });
    } finally {
      this.opts.progress.done();
      this.nodes.dispose();
    }
    const warnings: string[] = [];
    const jobs = this.xattrJobs.filter((j) => j.path.length < PATH_MAX);
    const acls = this.aclJobs.filter((j) => j.path.length < PATH_MAX);
    this.skipped.longPathXattrs = this.xattrJobs.length - jobs.length + this.aclJobs.length - acls.length;
    const xattrProblem = restoreXattrs(jobs);
    if (xattrProblem) warnings.push(`user.* xattrs not copied (${jobs.length} in all): ${xattrProblem}`);
    const aclProblem = restoreXattrs(acls); // before chmod, which then sets the mask as the mode says
    if (aclProblem) warnings.push(`POSIX ACLs not copied (${acls.length} in all): ${aclProblem}`);
    for (const f of this.fixups) {
      try {
        this.applyMetadata(f);
      } catch (e) {
        this.fail(f.path, e);
      }
    }
    if (this.skipped.devices) warnings.push(`${this.skipped.devices} device node(s) not created: mknod needs root`);
    if (this.skipped.sockets) warnings.push(`${this.skipped.sockets} socket(s) skipped: a socket cannot be copied`);
    if (this.skipped.xattrsOnSpecial) warnings.push(`${this.skipped.xattrsOnSpecial} user.* xattr(s) on symlinks or special files skipped: Linux allows user.* only on files and directories`);
    if (this.skipped.longPathXattrs) warnings.push(`${this.skipped.longPathXattrs} user.* xattr(s) on paths longer than PATH_MAX not copied (setfattr takes paths)`);
    if (this.skipped.otherNamespaces.size) warnings.push(`xattrs outside user.* not copied (${[...this.skipped.otherNamespaces].sort().join(", ")})`);
    return { entries: this.entries, bytes: this.opts.progress.bytes, warnings, failures: this.failures };
  }

  private walk(first: Step): void {
    const todo: Step[] = [first];
    while (todo.length > 0) {
      const step = todo.pop()!;
      if ("done" in step) {
        this.dirsSeen.set(step.dirIno, false); // no longer an ancestor
        this.finish(step.done); // after its contents: post-order
        continue;
      }
      const c: CopyStep = "top" in step
        ? { src: step.src, dst: step.dst, inode: step.top, ino: step.top.ino, top: true, inFresh: false }
        : { src: joinPath(step.dir.src, step.name), dst: joinPath(step.dir.dst, step.name), inode: null, ino: step.ino, top: false, inFresh: step.dir.inFresh };
      try {
        this.copy(c, todo);
      } catch (e) {
        if (c.top) throw e;
        this.fail(c.src, e);
      }
    }
  }

  /** A directory met before is a failure (see dirsSeen). */
  private checkNewDir(ino: number, shown: string): void {
    const onPath = this.dirsSeen.get(ino);
    if (onPath === true) throw new Ext4Error("EFSCORRUPTED", `directory loop: ${shown} is its own ancestor (inode ${ino})`, { ino });
    if (onPath === false) throw new Ext4Error("EFSCORRUPTED", `directory ${shown} (inode ${ino}) was already copied under another name (a second hard link to a directory)`, { ino });
  }

  private fail(where: Buffer, e: unknown): void {
    const err = e as { code?: unknown; message?: unknown };
    const code = typeof err?.code === "string" ? err.code : "EIO";
    const f: CopyFailure = { path: where.toString("utf8"), code, message: String(err?.message ?? e) };
    this.failures.push(f);
    this.opts.onFailure?.(f);
  }

  /** Clears the way for dst. Returns true when an existing directory is to be merged into. */
  private prepare(dst: Buffer, srcIsDir: boolean): boolean {
    const existing = fs.lstatSync(this.host.at(dst), { throwIfNoEntry: false });
    if (!existing) return false;
    if (srcIsDir && existing.isDirectory()) return true;
    if (!this.opts.force) throw new CliError("EEXIST", `file already exists, get '${dst.toString("utf8")}' (use --force to replace it)`);
    fs.rmSync(this.host.at(dst), { recursive: true, force: true });
    return false;
  }

  private copy(step: CopyStep, todo: Step[]): void {
    const { src, dst } = step;
    const shown = src.toString("utf8");
    this.entries++;
    this.opts.progress.file();
    const inode = step.inode ?? this.vol.inodeByNumber(step.ino, shown);
    const st = this.vol.statOf(inode, true) as BigIntStats;
    const isDir = st.isDirectory();
    if (isDir) this.checkNewDir(inode.ino, shown);
    // Inside a directory this copy just made nothing can be in the way: no lstat per entry.
    const merge = step.inFresh ? false : this.prepare(dst, isDir);

    if (!isDir && st.nlink > 1n) {
      const first = this.firstNameOf.get(st.ino);
      if (first) {
        const [a, b] = this.host.pair(first, dst);
        fs.linkSync(a, b);
        return; // same inode: its metadata is applied once, through the first name
      }
    }

    const fixup: Fixup = {
      path: dst, mode: Number(st.mode), uid: Number(st.uid), gid: Number(st.gid),
      atimeNs: st.atimeNs, mtimeNs: st.mtimeNs, symlink: st.isSymbolicLink(),
    };

    if (isDir) {
      if (!merge) fs.mkdirSync(this.host.at(dst), 0o700);
      fixup.xattrs = this.collectXattrs(inode, shown, dst, true);
      // Its metadata comes after everything below it; a listing that fails still gets it.
      todo.push({ done: fixup, dirIno: inode.ino });
      this.dirsSeen.set(inode.ino, true); // an ancestor until its done step
      const kids = this.vol.readdirInode(inode, shown).sort((x, y) => Buffer.compare(x.name, y.name));
      const dir: DirCtx = { src, dst, inFresh: !merge };
      for (let i = kids.length - 1; i >= 0; i--) todo.push({ dir, name: kids[i].name, ino: kids[i].ino });
      return;
    }

    if (st.isFile()) {
      const fd = fs.openSync(this.host.at(dst), "wx", 0o600);
      try {
        copyFileData(this.vol, shown, inode, Number(st.blksize), fd, (n) => this.opts.progress.addBytes(n));
      } catch (e) {
        // No half-copied file that looks whole: the failure is reported instead.
        fs.closeSync(fd);
        fs.rmSync(this.host.at(dst), { force: true });
        throw e;
      }
      fs.closeSync(fd);
      fixup.xattrs = this.collectXattrs(inode, shown, dst, true);
    } else if (st.isSymbolicLink()) {
      fs.symlinkSync(this.vol.readlinkInode(inode, shown), this.host.at(dst));
      fixup.xattrs = this.collectXattrs(inode, shown, dst, false);
    } else if (st.isFIFO()) {
      this.nodes.fifo(this.host.at(dst));
      fixup.xattrs = this.collectXattrs(inode, shown, dst, false);
    } else if (st.isCharacterDevice() || st.isBlockDevice()) {
      if (!this.root) {
        this.skipped.devices++;
        return;
      }
      const { major, minor } = majorMinor(Number(st.rdev));
      this.nodes.device(this.host.at(dst), st.isCharacterDevice() ? "c" : "b", major, minor);
      fixup.xattrs = this.collectXattrs(inode, shown, dst, false);
    } else {
      this.skipped.sockets++;
      return;
    }
    if (st.nlink > 1n) this.firstNameOf.set(st.ino, dst);
    this.finish(fixup);
  }

  /**
   * Owner, mode and times of an entry whose contents are done. As root no
   * mode can block a later step, so they are set at once and nothing piles up
   * in memory, unless user.* xattrs are still to be set on it (by the one
   * setfattr run at the end, before any chmod). Otherwise they wait for the end.
   */
  private finish(f: Fixup): void {
    if (!this.root || f.xattrs) {
      this.fixups.push(f);
      return;
    }
    try {
      this.applyMetadata(f);
    } catch (e) {
      this.fail(f.path, e);
    }
  }

  /** Queues the entry's user.* xattrs and POSIX ACLs; true if there are any. */
  private collectXattrs(inode: Inode, shown: string, dst: Buffer, canHoldUser: boolean): boolean {
    let any = false;
    for (const { name, value } of this.vol.xattrsOfInode(inode, shown)) {
      if (isPosixAcl(name)) {
        this.aclJobs.push({ path: dst, name, value });
        any = true;
        continue;
      }
      if (!name.startsWith("user.")) {
        this.skipped.otherNamespaces.add(name.slice(0, name.indexOf(".") + 1) + "*");
        continue;
      }
      if (!canHoldUser) {
        this.skipped.xattrsOnSpecial++;
        continue;
      }
      this.xattrJobs.push({ path: dst, name, value });
      any = true;
    }
    return any;
  }

  private applyMetadata(f: Fixup): void {
    const p = this.host.at(f.path);
    if (this.root) fs.lchownSync(p, f.uid, f.gid);
    if (!f.symlink) fs.chmodSync(p, f.mode & 0o7777);
    const set = f.symlink ? fs.lutimesSync : fs.utimesSync;
    set(p, utimesArg(f.atimeNs), utimesArg(f.mtimeNs));
  }
}
