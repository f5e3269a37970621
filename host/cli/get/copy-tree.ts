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
import type { BigIntStats } from "../../vfs/stats.js";
import type { Volume } from "../../vfs/volume.js";
import { CliError } from "../errors.js";
import { joinPath, majorMinor } from "../format.js";
import { copyFileData } from "./file-data.js";
import { isPosixAcl, NodeMaker, restoreXattrs, type XattrJob } from "./host-tools.js";
import type { Progress } from "./progress.js";
import { utimesArg } from "./times.js";

export interface CopyOptions {
  /** Replace existing non-directories at the destination (directories are merged). */
  force: boolean;
  /** Text path on the destination filesystem where a staging directory may be made (for FIFOs, devices). */
  stagingParent: string;
  progress: Progress;
}

interface Fixup {
  path: Buffer;
  mode: number;
  uid: number;
  gid: number;
  atimeNs: bigint;
  mtimeNs: bigint;
  symlink: boolean;
}

export interface CopyResult {
  entries: number;
  bytes: number;
  /** One line each, for stderr. */
  warnings: string[];
}

const isRoot = () => typeof process.getuid === "function" && process.getuid() === 0;

export class TreeCopier {
  private readonly firstNameOf = new Map<bigint, Buffer>();
  private readonly fixups: Fixup[] = [];
  private readonly xattrJobs: XattrJob[] = [];
  private readonly aclJobs: XattrJob[] = [];
  private readonly nodes: NodeMaker;
  private readonly root = isRoot();
  private skipped = { devices: 0, sockets: 0, xattrsOnSpecial: 0, otherNamespaces: new Set<string>() };
  private entries = 0;

  constructor(private readonly vol: Volume, private readonly opts: CopyOptions) {
    this.nodes = new NodeMaker(opts.stagingParent);
  }

  /** Copies src (a path in the image) to dst (a host path that is the copy itself). */
  run(src: Buffer, dst: Buffer): CopyResult {
    try {
      this.copy(src, dst, this.vol.lstatSync(src, { bigint: true }));
    } finally {
      this.opts.progress.done();
      this.nodes.dispose();
    }
    const warnings: string[] = [];
    const xattrProblem = restoreXattrs(this.xattrJobs);
    if (xattrProblem) warnings.push(`user.* xattrs not copied (${this.xattrJobs.length} in all): ${xattrProblem}`);
    const aclProblem = restoreXattrs(this.aclJobs); // before chmod, which then sets the mask as the mode says
    if (aclProblem) warnings.push(`POSIX ACLs not copied (${this.aclJobs.length} in all): ${aclProblem}`);
    for (const f of this.fixups) this.applyMetadata(f);
    if (this.skipped.devices) warnings.push(`${this.skipped.devices} device node(s) not created: mknod needs root`);
    if (this.skipped.sockets) warnings.push(`${this.skipped.sockets} socket(s) skipped: a socket cannot be copied`);
    if (this.skipped.xattrsOnSpecial) warnings.push(`${this.skipped.xattrsOnSpecial} user.* xattr(s) on symlinks or special files skipped: Linux allows user.* only on files and directories`);
    if (this.skipped.otherNamespaces.size) warnings.push(`xattrs outside user.* not copied (${[...this.skipped.otherNamespaces].sort().join(", ")})`);
    return { entries: this.entries, bytes: this.opts.progress.bytes, warnings };
  }

  /** Clears the way for dst. Returns true when an existing directory is to be merged into. */
  private prepare(dst: Buffer, srcIsDir: boolean): boolean {
    const existing = fs.lstatSync(dst, { throwIfNoEntry: false });
    if (!existing) return false;
    if (srcIsDir && existing.isDirectory()) return true;
    if (!this.opts.force) throw new CliError("EEXIST", `file already exists, get '${dst.toString("utf8")}' (use --force to replace it)`);
    fs.rmSync(dst, { recursive: true, force: true });
    return false;
  }

  private copy(src: Buffer, dst: Buffer, st: BigIntStats): void {
    this.entries++;
    this.opts.progress.file();
    const isDir = st.isDirectory();
    const merge = this.prepare(dst, isDir);

    if (!isDir && st.nlink > 1n) {
      const first = this.firstNameOf.get(st.ino);
      if (first) {
        fs.linkSync(first, dst);
        return; // same inode: its metadata is applied once, through the first name
      }
    }

    const fixup: Fixup = {
      path: dst, mode: Number(st.mode), uid: Number(st.uid), gid: Number(st.gid),
      atimeNs: st.atimeNs, mtimeNs: st.mtimeNs, symlink: st.isSymbolicLink(),
    };

    if (isDir) {
      if (!merge) fs.mkdirSync(dst, 0o700);
      this.collectXattrs(src, dst, true);
      const names = (this.vol.readdirSync(src, { encoding: "buffer" }) as Buffer[]).sort(Buffer.compare);
      for (const name of names) {
        const s = joinPath(src, name);
        this.copy(s, joinPath(dst, name), this.vol.lstatSync(s, { bigint: true }));
      }
      this.fixups.push(fixup); // after its contents: post-order
      return;
    }

    if (st.isFile()) {
      const fd = fs.openSync(dst, "wx", 0o600);
      try {
        copyFileData(this.vol, src, this.vol.inodeOf(src), fd, (n) => this.opts.progress.addBytes(n));
      } finally {
        fs.closeSync(fd);
      }
      this.collectXattrs(src, dst, true);
    } else if (st.isSymbolicLink()) {
      fs.symlinkSync(this.vol.readlinkSync(src, { encoding: "buffer" }) as Buffer, dst);
      this.collectXattrs(src, dst, false);
    } else if (st.isFIFO()) {
      this.nodes.fifo(dst);
      this.collectXattrs(src, dst, false);
    } else if (st.isCharacterDevice() || st.isBlockDevice()) {
      if (!this.root) {
        this.skipped.devices++;
        return;
      }
      const { major, minor } = majorMinor(Number(st.rdev));
      this.nodes.device(dst, st.isCharacterDevice() ? "c" : "b", major, minor);
      this.collectXattrs(src, dst, false);
    } else {
      this.skipped.sockets++;
      return;
    }
    if (st.nlink > 1n) this.firstNameOf.set(st.ino, dst);
    this.fixups.push(fixup);
  }

  private collectXattrs(src: Buffer, dst: Buffer, canHoldUser: boolean): void {
    for (const name of this.vol.listxattr(src, { noFollow: true })) {
      if (isPosixAcl(name)) {
        this.aclJobs.push({ path: dst, name, value: this.vol.getxattr(src, name, { noFollow: true }) });
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
      this.xattrJobs.push({ path: dst, name, value: this.vol.getxattr(src, name, { noFollow: true }) });
    }
  }

  private applyMetadata(f: Fixup): void {
    if (this.root) fs.lchownSync(f.path, f.uid, f.gid);
    if (!f.symlink) fs.chmodSync(f.path, f.mode & 0o7777);
    const set = f.symlink ? fs.lutimesSync : fs.utimesSync;
    set(f.path, utimesArg(f.atimeNs), utimesArg(f.mtimeNs));
  }
}
