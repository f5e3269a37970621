// Copying a host file or tree into a mounted image, the way `cp -a` copies:
// bytes with holes, symlinks, hard links (by host inode within this copy),
// FIFOs, sockets and device nodes, xattrs (all namespaces getfattr can
// read), owners (as root; otherwise the invoking user's, as cp), all twelve
// mode bits and nanosecond atime/mtime.
//
// All or nothing: the tree is planned and its space checked first; entries
// are created (an entry that replaces an existing file is written under a
// temporary name beside it); only when everything is written are the
// temporary names renamed over the files they replace. A failure before that
// removes everything this copy created and leaves the image as it was.
// Metadata goes last, in post-order (a directory after its entries, whose
// creation moved its mtime), chown before chmod (chown clears setuid/setgid).

import * as fs from "node:fs";
import * as path from "node:path";
import { Ext4Error } from "../../errors.js";
import type { Volume } from "../../vfs/volume.js";
import { joinPath } from "../format.js";
import { type HostXattr, readHostXattrs } from "./host-xattrs.js";
import type { PutProgress } from "./progress.js";

export interface PutOptions {
  progress: PutProgress;
}

export interface PutResult {
  entries: number;
  bytes: number;
  warnings: string[];
}

interface Entry {
  /** Host path bytes (names need not be UTF-8). */
  host: Buffer;
  /** Where it ends up in the image. */
  dst: Buffer;
  /** Where it is created: dst, or a temporary name beside it when dst exists and is replaced. */
  at: Buffer;
  st: fs.BigIntStats;
  /** Index of the first entry with the same host inode (a hard link), or -1. */
  linkOf: number;
  /** An existing directory of the image this copy merges into (nothing created). */
  merge: boolean;
  /** Owner, mode and times already set at creation (a regular file, through its descriptor). */
  settled: boolean;
  /**
   * What is created in its parent gets the creator's ids and exactly the mode asked: no setgid bit
   * and no default ACL there (a directory this copy makes is 0700 until the end and inherits those
   * only from a parent that has them).
   */
  clean: boolean;
}

const CHUNK = 1 << 20;
const S_IFMT = 0o170000n;

function kind(st: fs.BigIntStats): "dir" | "file" | "symlink" | "node" {
  if (st.isDirectory()) return "dir";
  if (st.isFile()) return "file";
  if (st.isSymbolicLink()) return "symlink";
  return "node";
}

export class TreeImporter {
  private readonly entries: Entry[] = [];
  private readonly created: Buffer[] = [];
  private readonly warnings: string[] = [];
  private bytes = 0;
  private tmpSeq = 0;
  /** The image's block size (the unit of holes), asked once. */
  private blockSize = 0;
  /** The one buffer every file's bytes pass through (a fresh megabyte per file was most of put's GC). */
  private chunk: Buffer | undefined;
  /** Owners of what is created: the source's as root, else the invoking user's (as cp); fixed for the run. */
  private owner: ((st: fs.BigIntStats) => { uid: number; gid: number }) | undefined;
  /** Who creates (the effective ids): what a new inode in a clean directory is owned by. */
  private creator = { uid: 0, gid: 0 };

  constructor(private readonly vol: Volume, private readonly opts: PutOptions) {}

  /** Copies host path `src` so that it becomes image path `dst` (dst's parent must exist). */
  run(src: string, dst: Buffer): PutResult {
    src = path.resolve(src); // getfattr then names entries exactly as the walk joins them
    this.plan(Buffer.from(src), dst);
    this.checkSpace();
    let total = 0;
    for (const e of this.entries) if (e.linkOf < 0 && e.st.isFile()) total += Number(e.st.size);
    this.opts.progress.start(this.entries.length, total);
    const xattrs = this.hostXattrs(src);
    const root = typeof process.getuid === "function" && process.getuid() === 0;
    const uid = process.getuid?.() ?? 0, gid = process.getgid?.() ?? 0;
    this.owner = root ? (st) => ({ uid: Number(st.uid), gid: Number(st.gid) }) : () => ({ uid, gid });
    this.creator = { uid: process.geteuid?.() ?? 0, gid: process.getegid?.() ?? 0 };
    // No umask while creating: a file in a clean directory is made with its final permission bits
    // (its own descriptor writes it all the same), so most need no chmod; metadata sets the rest.
    const umask = this.vol.umask;
    this.vol.umask = 0;
    try {
      for (const e of this.entries) this.create(e, !xattrs.has(e.host.toString("latin1")));
      for (const e of this.entries) {
        const list = xattrs.get(e.host.toString("latin1"));
        if (list && !e.merge) this.setXattrs(e, list);
      }
    } catch (err) {
      this.opts.progress.done();
      this.rollback();
      throw err;
    } finally {
      this.vol.umask = umask;
    }
    this.opts.progress.stage("owners and times");
    for (const e of this.entries) if (!e.at.equals(e.dst)) this.vol.renameSync(e.at, e.dst);
    for (let i = this.entries.length - 1; i >= 0; i--) if (!this.entries[i].settled) this.metadata(this.entries[i]);
    return { entries: this.entries.length, bytes: this.bytes, warnings: this.warnings };
  }

  /** The walk of the host tree, pre-order, with what is in the way in the image. */
  private plan(src: Buffer, dst: Buffer): void {
    const firstOf = new Map<string, number>();
    // `fresh`: the parent is created by this copy, so nothing of the image can be in the way.
    const slash = dst.lastIndexOf(0x2f);
    const top = { host: src, dst, fresh: false, clean: this.cleanDir(slash <= 0 ? Buffer.from("/") : dst.subarray(0, slash)) };
    const todo: { host: Buffer; dst: Buffer; fresh: boolean; clean: boolean }[] = [top];
    while (todo.length > 0) {
      const { host, dst: d, fresh, clean } = todo.pop()!;
      const st = fs.lstatSync(host, { bigint: true });
      const k = kind(st);
      let linkOf = -1;
      if (k !== "dir" && st.nlink > 1n) {
        const key = `${st.dev}:${st.ino}`;
        linkOf = firstOf.get(key) ?? -1;
        if (linkOf < 0) firstOf.set(key, this.entries.length);
      }
      const existing = fresh ? undefined : this.vol.lstatSync(d, { throwIfNoEntry: false });
      let merge = false;
      let at = d;
      if (existing) {
        const shown = d.toString("utf8");
        if (k === "dir" && existing.isDirectory()) merge = true;
        else if (k === "dir") throw new Ext4Error("EEXIST", `cannot overwrite non-directory '${shown}' with a directory`, { syscall: "put", path: shown });
        else if (existing.isDirectory()) throw new Ext4Error("EISDIR", `cannot overwrite directory '${shown}' with a non-directory`, { syscall: "put", path: shown });
        else at = this.tempBeside(d);
      }
      this.entries.push({ host, dst: d, at, st, linkOf, merge, settled: false, clean });
      if (k === "dir") {
        const names = fs.readdirSync(host, { encoding: "buffer" }).sort(Buffer.compare).reverse();
        const inside = merge ? this.cleanDir(d) : clean;
        for (const n of names) todo.push({ host: joinPath(host, n), dst: joinPath(d, n), fresh: !merge, clean: inside });
      }
    }
  }

  /** An existing directory of the image gives what is created in it no group and no ACL of its own. */
  private cleanDir(dir: Buffer): boolean {
    const st = this.vol.lstatSync(dir, { throwIfNoEntry: false });
    if (!st?.isDirectory() || st.mode & 0o2000) return false;
    return !this.vol.listxattr(dir, { noFollow: true }).includes("system.posix_acl_default");
  }

  private tempBeside(dst: Buffer): Buffer {
    const slash = dst.lastIndexOf(0x2f);
    return Buffer.concat([dst.subarray(0, slash + 1), Buffer.from(`.ext4wasm-put.${process.pid}.${this.tmpSeq++}`)]);
  }

  /** ENOSPC before anything is written, when the tree plainly cannot fit. */
  private checkSpace(): void {
    const s = this.vol.statfsSync();
    let blocks = 0;
    let inodes = 0;
    for (const e of this.entries) {
      if (e.merge || e.linkOf >= 0) continue;
      inodes++;
      const k = kind(e.st);
      if (k === "dir") blocks += 1;
      else if (k === "file") blocks += Math.ceil(Math.min(Number(e.st.size), Number(e.st.blocks) * 512) / s.bsize);
    }
    // Extent and directory-index blocks come on top: about one in 340 data blocks at 4 KiB.
    blocks += Math.ceil(blocks / 256);
    if (blocks > s.bavail) throw new Ext4Error("ENOSPC", `no space left on device: the copy needs about ${blocks} blocks of ${s.bsize} bytes, ${s.bavail} are free`, { syscall: "put" });
    if (inodes > s.ffree) throw new Ext4Error("ENOSPC", `no space left on device: the copy needs ${inodes} inodes, ${s.ffree} are free`, { syscall: "put" });
  }

  private hostXattrs(src: string): Map<string, HostXattr[]> {
    const r = readHostXattrs(src);
    if ("error" in r) {
      this.warnings.push(`xattrs not copied: ${r.error}`);
      return new Map();
    }
    return r.byPath;
  }

  /** Makes the entry; `settle`: a regular file with no xattrs to come gets its metadata now, through its descriptor. */
  private create(e: Entry, settle: boolean): void {
    this.opts.progress.file();
    if (e.merge) return;
    const vol = this.vol;
    const k = kind(e.st);
    if (e.linkOf >= 0) {
      vol.linkSync(this.entries[e.linkOf].at, e.at);
    } else if (k === "dir") {
      vol.mkdirSync(e.at, { mode: 0o700 });
    } else if (k === "symlink") {
      vol.symlinkSync(fs.readlinkSync(e.host, { encoding: "buffer" }), e.at);
    } else if (k === "node") {
      vol.mknodSync(e.at, Number(e.st.mode), Number(e.st.rdev));
    } else {
      this.copyFile(e, settle);
      return;
    }
    this.created.push(e.at);
  }

  /**
   * The file's bytes, a megabyte per host read into one reused buffer (a
   * small file: one read); a sparse host file's zero blocks stay holes (cp
   * --sparse=auto). With `settle`, owner, mode and times are set through the
   * open descriptor once the bytes are in, as cp -a does per file: no path
   * walks for them later.
   */
  private copyFile(e: Entry, settle: boolean): void {
    const vol = this.vol;
    const size = Number(e.st.size);
    const sparse = Number(e.st.blocks) * 512 < size;
    const bs = (this.blockSize ||= vol.statfsSync().bsize);
    const src = size > 0 ? fs.openSync(e.host, "r") : -1;
    try {
      // Made with its final rwx bits where nothing in the parent changes them (see run).
      const quick = settle && e.clean;
      const fd = vol.openSync(e.at, "wx", quick ? Number(e.st.mode & 0o777n) : 0o600);
      this.created.push(e.at);
      try {
        const buf = (this.chunk ??= Buffer.allocUnsafeSlow(CHUNK));
        let end = 0; // where the last byte written ends
        for (let pos = 0; pos < size; ) {
          const n = fs.readSync(src, buf, 0, Math.min(CHUNK, size - pos), pos);
          if (n === 0) break; // the host file shrank under us: copy what there is
          if (!sparse) {
            vol.writeSync(fd, buf, 0, n, pos);
            end = pos + n;
          } else {
            end = this.writeSparse(fd, buf.subarray(0, n), pos, bs) || end;
          }
          pos += n;
          this.bytes += n;
          this.opts.progress.addBytes(n);
        }
        // A file that ends in a hole (or shrank) gets its size all the same.
        if (end !== size) vol.ftruncateSync(fd, size);
        if (quick) {
          // Owned by the creator, mode as made: chown only for other ids, chmod only for set-ID and sticky bits.
          const { uid, gid } = this.owner!(e.st);
          if (uid !== this.creator.uid || gid !== this.creator.gid) vol.fchownSync(fd, uid, gid);
          if (e.st.mode & 0o7000n) vol.fchmodSync(fd, Number(e.st.mode & ~S_IFMT));
          vol.futimesSync(fd, e.st.atimeNs, e.st.mtimeNs);
          e.settled = true;
        } else if (settle) {
          this.setMetadata(e, (uid, gid) => vol.fchownSync(fd, uid, gid), (mode) => vol.fchmodSync(fd, mode), (a, m) => vol.futimesSync(fd, a, m));
          e.settled = true;
        }
      } finally {
        vol.closeSync(fd);
      }
    } finally {
      if (src >= 0) fs.closeSync(src);
    }
  }

  /** Writes only the blocks of `data` (file offset `pos`) that are not all zero; returns where the last run written ends, 0 if none. */
  private writeSparse(fd: number, data: Buffer, pos: number, bs: number): number {
    let runStart = -1;
    let end = 0;
    for (let off = 0; off <= data.length; off += bs) {
      const stop = Math.min(off + bs, data.length);
      const zero = off >= data.length || isZero(data, off, stop);
      if (!zero && runStart < 0) runStart = off;
      if ((zero || stop === data.length) && runStart >= 0) {
        const last = zero ? off : stop;
        this.vol.writeSync(fd, data, runStart, last - runStart, pos + runStart);
        end = pos + last;
        runStart = -1;
      }
    }
    return end;
  }

  private setXattrs(e: Entry, list: HostXattr[]): void {
    for (const x of list) {
      try {
        this.vol.setxattr(e.at, x.name, x.value, { noFollow: true });
      } catch (err) {
        const code = (err as { code?: string }).code;
        // What the image cannot hold (a value too big for one block: ENOSPC, E2BIG; a namespace ext4
        // refuses) is a warning, as cp -a treats xattr failures; a damaged or read-only image is fatal.
        if (code === "EIO" || code === "EFSCORRUPTED" || code === "EROFS") throw err;
        this.warnings.push(`xattr ${x.name} of ${e.dst.toString("utf8")} not copied: ${(err as Error).message}`);
      }
    }
  }

  /** Owner, mode and times by path, in post-order (a directory merged into gets the source's too, as cp -a gives it). */
  private metadata(e: Entry): void {
    const vol = this.vol;
    const chmod = kind(e.st) === "symlink" ? undefined : (mode: number) => vol.chmodSync(e.dst, mode);
    this.setMetadata(e, (uid, gid) => vol.lchownSync(e.dst, uid, gid), chmod, (a, m) => vol.lutimesSync(e.dst, a, m));
  }

  /** chown before chmod (chown clears setuid and setgid), times last. */
  private setMetadata(e: Entry, chown: (uid: number, gid: number) => void, chmod: ((mode: number) => void) | undefined,
    utimes: (atime: bigint, mtime: bigint) => void): void {
    const st = e.st;
    const { uid, gid } = this.owner!(st);
    chown(uid, gid);
    chmod?.(Number(st.mode & ~S_IFMT));
    utimes(st.atimeNs, st.mtimeNs); // bigint: exact nanoseconds
  }

  /** Removes what this copy created, newest first (a directory after its contents). */
  private rollback(): void {
    for (let i = this.created.length - 1; i >= 0; i--) {
      try {
        this.vol.rmSync(this.created[i], { recursive: true, force: true });
      } catch {
        // Keep removing the rest; the first error is the one reported.
      }
    }
  }
}

function isZero(b: Buffer, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (b[i] !== 0) return false;
  return true;
}
