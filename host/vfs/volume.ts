// The node:fs-compatible facade over a mounted filesystem: the only layer
// that knows paths and the only one users call.

import { Buffer } from "node:buffer";
import type { Readable, Writable } from "node:stream";
import { BhBufferedIO } from "../buffered/bh/read.js";
import { dropBehind, type BufferedIO } from "../buffered/io.js";
import { IomapBufferedIO } from "../buffered/iomap/read.js";
import { ReadaheadState } from "../buffered/readahead.js";
import { selectPath, shouldUseBufferedIomap } from "../buffered/select.js";
import { MAX_FOLIO_ORDER, PAGE_SIZE } from "../cache/folio-cache.js";
import { corrupted, Ext4Error } from "../errors.js";
import { FT } from "../format/dirent.js";
import { aclFromDisk, aclToXattr } from "../format/acl.js";
import { XATTR_INDEX_POSIX_ACL_ACCESS, XATTR_INDEX_POSIX_ACL_DEFAULT, XATTR_VISIBLE } from "../format/xattr.js";
import { Inode, INODE_FLAGS, isDir, isLnk, isReg, S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT, S_IFREG, S_IFSOCK } from "../format/inode.js";
import { readDir } from "../fs/dir.js";
import { MapKind } from "../fs/mapping.js";
import { readInline } from "../fs/inline.js";
import { encryptedSymlinkCiphertext, readSymlink } from "../fs/symlink.js";
import { type Ext4Inode, STATE } from "../fs/inode.js";
import type { Ext4 } from "../fs/super.js";
import { inodeXattrs } from "../fs/xattr.js";
import { checkXattrArgs, vfsRemovexattr, vfsSetxattr } from "./xattr-set.js";
import { nokeyName, readdirHashVersion } from "./nokey-name.js";
import { defer } from "./defer.js";
import { Dir } from "./opendir.js";
import { PathLike, pathBytes, pathText, resolve } from "./path-walk.js";
import { accessMode, checkAccess, F_OK, R_OK, W_OK, X_OK } from "./permission.js";
import { VolumeReadStream, type ReadStreamOptions } from "./read-stream.js";
import { BigIntStats, decodeRdev, Stats } from "./stats.js";
import type { Dirent } from "./types.js";
import { touchAtime } from "./atime.js";
import { credScope, processCred, type VfsContext } from "./context.js";
import { copyFile, COPYFILE_EXCL, COPYFILE_FICLONE, COPYFILE_FICLONE_FORCE } from "./copy-file.js";
import { FileHandle } from "./file-handle.js";
import { FileTable, type OpenFile } from "./file-table.js";
import {
  type FallocateFlags, vfsChmod, vfsChown, vfsFallocateFile, vfsFsync, vfsFtruncate, vfsTruncate, vfsUtimes, vfsWrite, vfsWritev,
  markTimesQueried,
} from "./file-write.js";
import { openPath, type RenameFlags, vfsLink, vfsMkdir, vfsMkdirRecursive, vfsMknod, vfsRename, vfsRmdir, vfsSymlink, vfsUnlink } from "./namespace.js";
import {
  fileMode, O_APPEND, O_CREAT, O_DIRECT, O_DIRECTORY, O_DSYNC, O_EXCL, O_NOATIME, O_NOCTTY, O_NOFOLLOW, O_NONBLOCK, O_RDONLY, O_RDWR,
  O_SYNC, O_TRUNC, O_WRONLY, parseFileMode, parseOpenFlags,
} from "./open-flags.js";
import { statfs, type StatFs } from "./statfs.js";
import { writebackAll } from "./sync.js";
import { bufferArray, fileData, idArg, lengthArg, options, timeArg, validateInt32, validFd, writeArgs } from "./write-args.js";
import { VolumeWriteStream, type WriteStreamOptions } from "./write-stream.js";

type Encoding = BufferEncoding | "buffer" | null | undefined;
interface EncOpt { encoding?: Encoding }

/** A directory entry as getdents gives it: inode number, name bytes, file type (FT_*). */
export interface DirEntryInfo { ino: number; name: Uint8Array; fileType: number }


const S_TO_FT: Record<number, number> = {
  [S_IFREG]: FT.REG, [S_IFDIR]: FT.DIR, [S_IFCHR]: FT.CHR, [S_IFBLK]: FT.BLK, [S_IFIFO]: FT.FIFO,
  [S_IFSOCK]: FT.SOCK, [S_IFLNK]: FT.SYMLINK,
};

const SLASH = Uint8Array.of(0x2f);

class Ext4Dirent implements Dirent {
  /** `name` is a string, or a Buffer when readdir was asked for encoding "buffer" (as node's Dirent). */
  constructor(readonly name: string | Buffer, readonly rawName: Uint8Array, readonly parentPath: string, readonly ino: number, private readonly ft: number) {}
  get path(): string { return this.parentPath; }
  isFile(): boolean { return this.ft === FT.REG; }
  isDirectory(): boolean { return this.ft === FT.DIR; }
  isSymbolicLink(): boolean { return this.ft === FT.SYMLINK; }
  isBlockDevice(): boolean { return this.ft === FT.BLK; }
  isCharacterDevice(): boolean { return this.ft === FT.CHR; }
  isFIFO(): boolean { return this.ft === FT.FIFO; }
  isSocket(): boolean { return this.ft === FT.SOCK; }
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

/** Name bytes joined with "/". */
function joinPath(parts: Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0];
  const out: Uint8Array[] = [];
  parts.forEach((p, i) => (i ? out.push(SLASH, p) : out.push(p)));
  return Buffer.concat(out);
}

/** Components of the joined paths with "." and "//" dropped and ".." taken lexically, as path.resolve from "/". */
function lexicalParts(pieces: Uint8Array[]): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (const piece of pieces) {
    let start = 0;
    for (let i = 0; i <= piece.length; i++) {
      if (i < piece.length && piece[i] !== 0x2f) continue;
      const n = piece.subarray(start, i);
      start = i + 1;
      if (n.length === 0 || (n.length === 1 && n[0] === 0x2e)) continue;
      if (n.length === 2 && n[0] === 0x2e && n[1] === 0x2e) out.pop();
      else out.push(n);
    }
  }
  return out;
}

/** "/" followed by the components joined with "/". */
function absolute(parts: Uint8Array[]): Buffer {
  return Buffer.concat(parts.length ? parts.flatMap((p) => [SLASH, p]) : [SLASH]);
}

function decodeName(b: Uint8Array, encoding: Encoding): string | Buffer {
  const buf = Buffer.from(b.buffer, b.byteOffset, b.length);
  if (encoding === "buffer") return Buffer.from(buf);
  return buf.toString(encoding ?? "utf8");
}

function encodingOf(opt: Encoding | EncOpt | undefined): Encoding {
  if (typeof opt === "string" || opt === null) return opt;
  return opt?.encoding;
}

export class Volume {
  private readonly files = new FileTable();
  private closed = false;
  private readonly paths: { bh: BufferedIO; iomap: BufferedIO };
  /** What the write modules share (host/vfs/context.ts). */
  private readonly ctx: VfsContext;
  /** A stand-in st_dev so hard-link detection works across one volume. */
  readonly dev: number;
  readonly promises: VolumePromises;

  constructor(readonly fs: Ext4) {
    this.paths = { bh: new BhBufferedIO(fs), iomap: new IomapBufferedIO(fs) };
    this.dev = fs.sb.uuid[0] | (fs.sb.uuid[1] << 8) | (fs.sb.uuid[2] << 16);
    this.promises = new VolumePromises(this);
    this.ctx = { fs, io: (inode) => selectPath(fs, inode, this.paths), cred: processCred, umask: 0o022, written: new Set() };
    bindMethods(this, Volume.prototype);
  }

  /** The umask applied to the modes of new files, directories and nodes (default 0o022, as a usual shell's). */
  get umask(): number { return this.ctx.umask; }
  set umask(mask: number) { this.ctx.umask = mask & 0o777; }

  private check(syscall: string, path?: PathLike): void {
    if (this.closed) throw new Ext4Error("EBADF", "volume is unmounted", { syscall, path: path === undefined ? undefined : pathText(path) });
  }

  /** Runs fn, attaching syscall and path to errors from below and typing stray bounds failures. */
  private op<T>(syscall: string, path: PathLike | undefined, fn: () => T, dest?: PathLike): T {
    this.check(syscall, path);
    try {
      return credScope(fn); // the caller's ids read once for the whole operation
    } catch (e) {
      throw annotate(e, syscall, path === undefined ? undefined : pathText(path), dest === undefined ? undefined : pathText(dest));
    }
  }

  /** Which buffered I/O path a file takes ("bh" or "iomap"). */
  ioPathOf(path: PathLike): "bh" | "iomap" {
    return this.op("stat", path, () => (shouldUseBufferedIomap(this.fs, resolve(this.fs, path, true, "stat").inode) ? "iomap" : "bh"));
  }

  // ---- metadata ----------------------------------------------------------

  statSync(path: PathLike, opts?: { bigint?: false; throwIfNoEntry?: boolean }): Stats;
  statSync(path: PathLike, opts: { bigint: true; throwIfNoEntry?: boolean }): BigIntStats;
  statSync(path: PathLike, opts: { bigint?: boolean; throwIfNoEntry?: boolean } = {}): Stats | BigIntStats | undefined {
    return this.statImpl(path, true, "stat", opts);
  }

  lstatSync(path: PathLike, opts?: { bigint?: false; throwIfNoEntry?: boolean }): Stats;
  lstatSync(path: PathLike, opts: { bigint: true; throwIfNoEntry?: boolean }): BigIntStats;
  lstatSync(path: PathLike, opts: { bigint?: boolean; throwIfNoEntry?: boolean } = {}): Stats | BigIntStats | undefined {
    return this.statImpl(path, false, "lstat", opts);
  }

  private statImpl(path: PathLike, follow: boolean, syscall: string, opts: { bigint?: boolean; throwIfNoEntry?: boolean }) {
    try {
      return this.op(syscall, path, () => this.statOf(resolve(this.fs, path, follow, syscall).inode, opts.bigint ?? false));
    } catch (e) {
      if (opts.throwIfNoEntry === false && (e as Ext4Error).code === "ENOENT") return undefined;
      throw e;
    }
  }

  /** A symlink's target; without the key, an encrypted one reads as its no-key name, as the kernel shows it. */
  private symlinkTarget(inode: Inode): Uint8Array {
    if (inode.flags & INODE_FLAGS.ENCRYPT) return nokeyName(this.fs, -1, encryptedSymlinkCiphertext(this.fs, inode));
    return readSymlink(this.fs, inode);
  }

  statOf(inode: Inode, bigint: boolean): Stats | BigIntStats {
    markTimesQueried(inode);
    if (isLnk(inode) && inode.flags & INODE_FLAGS.ENCRYPT) {
      // fscrypt_symlink_getattr: st_size is the length of what readlink returns.
      inode = { ...inode, size: this.symlinkTarget(inode).length };
    }
    const fmt = inode.mode & S_IFMT;
    const rdev = fmt === S_IFCHR || fmt === S_IFBLK ? decodeRdev(inode.iBlock) : 0;
    return bigint ? new BigIntStats(inode, this.fs.sb.blockSize, rdev, this.dev) : new Stats(inode, this.fs.sb.blockSize, rdev, this.dev);
  }

  existsSync(path: PathLike): boolean {
    try {
      this.check("access", path);
      resolve(this.fs, path, true, "access");
      return true;
    } catch {
      return false;
    }
  }

  /**
   * node's realpathSync, step for step: ".." taken lexically first, then each
   * prefix lstat'ed and each symlink stat'ed and substituted, so results and
   * errors (syscall lstat or stat, the prefix as path) are node's.
   */
  realpathSync(path: PathLike, opts?: Encoding | EncOpt): string | Buffer {
    this.check("lstat", path);
    let parts = lexicalParts([pathBytes(path)]);
    const hard = new Set<string>(); // prefixes known not to be symlinks
    for (let i = 0, substitutions = 0; i < parts.length; ) {
      const base = absolute(parts.slice(0, i + 1));
      const key = Buffer.from(base).toString("latin1");
      if (hard.has(key)) { i++; continue; }
      if (!this.lstatSync(base).isSymbolicLink()) { hard.add(key); i++; continue; }
      this.statSync(base); // a dangling or looping link fails here, as node's stat does
      if (++substitutions > 4096) throw new Ext4Error("ELOOP", "too many symbolic links encountered", { syscall: "stat", path: pathText(base) });
      const target = this.op("readlink", base, () => this.symlinkTarget(this.inodeOf(base)));
      parts = lexicalParts(target[0] === 0x2f ? [target, ...parts.slice(i + 1)] : [...parts.slice(0, i), target, ...parts.slice(i + 1)]);
      i = 0;
    }
    return decodeName(absolute(parts), encodingOf(opts));
  }

  readlinkSync(path: PathLike, opts?: Encoding | EncOpt): string | Buffer {
    return this.op("readlink", path, () => {
      const inode = resolve(this.fs, path, false, "readlink").inode;
      if (!isLnk(inode)) throw new Ext4Error("EINVAL", "not a symbolic link");
      return decodeName(this.symlinkTarget(inode), encodingOf(opts));
    });
  }

  // ---- directories -------------------------------------------------------

  readdirSync(path: PathLike, opts: { withFileTypes: true; encoding?: Encoding; recursive?: boolean }): Dirent[];
  readdirSync(path: PathLike, opts?: Encoding | { withFileTypes?: false; encoding?: Encoding; recursive?: boolean }): (string | Buffer)[];
  readdirSync(path: PathLike, opts?: Encoding | { withFileTypes?: boolean; encoding?: Encoding; recursive?: boolean }): (string | Buffer | Dirent)[] {
    return this.op("scandir", path, () => {
      const o = typeof opts === "object" && opts !== null ? opts : { encoding: opts };
      const encoding = o.encoding;
      const out: (string | Buffer | Dirent)[] = [];
      const root = resolve(this.fs, path, true, "scandir").inode;
      if (!isDir(root)) throw new Ext4Error("ENOTDIR", "not a directory");
      // Breadth first, each listing sorted by name bytes: the order node's
      // readdirSync gives (libuv sorts scandir with strcmp; recursive walks a queue).
      const queue: { inode: Inode; rel: Uint8Array[]; parentPath: string }[] = [{ inode: root, rel: [], parentPath: pathText(path) }];
      // A corrupt entry can lead back up the tree: descend into each directory once.
      const entered = new Set<number>();
      for (let q = 0; q < queue.length; q++) {
        const { inode, rel, parentPath } = queue[q];
        if (entered.has(inode.ino)) throw corrupted(`directory inode ${inode.ino} is reached twice (a directory loop)`, { ino: inode.ino });
        entered.add(inode.ino);
        for (const e of this.entries(inode).sort((x, y) => compareBytes(x.name, y.name))) {
          const relBytes = [...rel, e.name];
          if (o.withFileTypes) {
            out.push(new Ext4Dirent(decodeName(e.name, encoding), e.name, parentPath, e.ino, e.fileType));
          } else {
            out.push(decodeName(joinPath(relBytes), encoding));
          }
          if (o.recursive && e.fileType === FT.DIR) {
            const child = this.fs.inodeByEntry(e.ino);
            const childPath = `${parentPath.replace(/\/$/, "")}/${decodeName(e.name, "utf8") as string}`;
            if (isDir(child)) queue.push({ inode: child, rel: relBytes, parentPath: childPath });
          }
        }
        this.atime(inode); // iterate_dir's file_accessed
      }
      return out;
    });
  }

  /** Directory entries without "." and "..", with file types filled in when the fs lacks them. */
  private entries(dir: Inode, rawTypes = false): DirEntryInfo[] {
    const out: DirEntryInfo[] = [];
    const encrypted = (dir.flags & INODE_FLAGS.ENCRYPT) !== 0;
    const version = encrypted ? readdirHashVersion(this.fs, dir) : -1;
    for (const e of readDir(this.fs, dir)) {
      const n = e.name;
      if ((n.length === 1 && n[0] === 0x2e) || (n.length === 2 && n[0] === 0x2e && n[1] === 0x2e)) continue;
      let ft = e.fileType;
      if (!rawTypes && (ft === FT.UNKNOWN || ft > FT.SYMLINK)) ft = S_TO_FT[this.fs.inode(e.ino).mode & S_IFMT] ?? FT.UNKNOWN;
      out.push({ ino: e.ino, name: encrypted ? nokeyName(this.fs, version, n) : n, fileType: ft });
    }
    return out;
  }

  // ---- file data ---------------------------------------------------------

  readFileSync(path: PathLike | number, opts?: Encoding | EncOpt & { flag?: string | number }): string | Buffer {
    const encoding = encodingOf(opts as Encoding | EncOpt);
    const flag = typeof opts === "object" && opts !== null ? opts.flag : undefined;
    if (typeof path !== "number" && flag !== undefined && parseOpenFlags(flag) !== O_RDONLY) {
      // A flag that may create or truncate: open as node does, read through the fd.
      const fd = this.openSync(path, flag);
      try { return this.readFileSync(fd, opts); } finally { this.closeSync(fd); }
    }
    const data = typeof path === "number"
      ? this.op("read", undefined, () => this.readAllFile(this.files.readable(path)))
      : this.op("open", path, () => {
        const inode = resolve(this.fs, path, true, "open").inode;
        // node opens, then fails the read: the error names the read, not the path.
        if (isDir(inode)) throw new Ext4Error("EISDIR", "illegal operation on a directory", { syscall: "read" });
        const out = this.readAll(inode);
        this.atime(inode);
        return out;
      });
    return encoding && encoding !== "buffer" ? data.toString(encoding) : data;
  }

  /** readFileSync(fd): from the descriptor's position to EOF, which moves the position, as node reads it. */
  private readAllFile(f: OpenFile): Buffer {
    const out = this.readAll(f.inode, f.pos, f.ra);
    f.pos += out.length;
    if (!(f.mode.flags & O_NOATIME)) this.atime(f.inode);
    return out;
  }

  /** touch_atime after a read, on the in-core inode (held while it is written). */
  private atime(inode: Inode, noatime = false): void {
    if (this.fs.readOnly || noatime) return;
    const held = this.fs.iget(inode.ino);
    try {
      touchAtime(this.ctx, held);
    } catch (e) {
      // As touch_atime: a read never fails for its atime (an aborted journal, an error-remounted volume).
      if (!(e instanceof Ext4Error)) throw e;
    } finally {
      this.fs.iput(held);
    }
  }

  private readAll(inode: Inode, from = 0, ra = new ReadaheadState()): Buffer {
    if (isDir(inode)) throw new Ext4Error("EISDIR", "illegal operation on a directory");
    const size = Math.max(0, inode.size - from);
    if (size > 0x7fffffff) throw new Ext4Error("ERR_FS_FILE_TOO_LARGE", `file is too large to read into one buffer (${size} bytes)`);
    const out = Buffer.allocUnsafe(size);
    const n = this.readInode(inode, from, out, ra);
    return n === out.length ? out : out.subarray(0, n);
  }

  /** Reads file bytes at pos into dst through the inode's I/O path. */
  readInode(inode: Inode, pos: number, dst: Uint8Array, ra: ReadaheadState): number {
    if (!isReg(inode) && !isLnk(inode)) {
      if (isDir(inode)) throw new Ext4Error("EISDIR", "illegal operation on a directory");
      return 0; // devices, fifos, sockets have no data in the image
    }
    if (inode.flags & INODE_FLAGS.INLINE_DATA) return readInline(this.fs, inode, pos, dst);
    let total = 0;
    const path = selectPath(this.fs, inode, this.paths);
    while (total < dst.length) {
      const n = path.read(inode, pos + total, dst.subarray(total), ra);
      if (n === 0) break;
      total += n;
    }
    return total;
  }

  /**
   * open(2) with node's string flags ("r", "r+", "w", "wx", "a+", "as", ...)
   * or O_* numbers (Linux values: vol.constants), and the mode of a new file
   * (default 0o666, less the umask).
   */
  openSync(path: PathLike, flags: string | number = "r", mode?: number | string): number {
    const fl = parseOpenFlags(flags);
    const perm = parseFileMode(mode, "mode", 0o666);
    pathBytes(path);
    return this.op("open", path, () => {
      // An open file holds its inode (iget): it stays the one in-core object of its number until close.
      const { inode, created } = openPath(this.ctx, path, fl, perm);
      try {
        // handle_truncate: O_TRUNC empties a regular file that existed (its times set even if it was empty).
        if (fl & O_TRUNC && !created && isReg(inode)) vfsTruncate(this.ctx, inode, 0);
      } catch (e) {
        this.fs.iput(inode);
        throw e;
      }
      return this.files.add({ inode, pos: 0, ra: new ReadaheadState(), path: pathText(path), mode: fileMode(fl) });
    });
  }

  private fd(fd: number): OpenFile {
    return this.files.get(fd);
  }

  readSync(fd: number, buffer: Uint8Array, offset?: number | { offset?: number; length?: number; position?: number | bigint | null }, length?: number, position?: number | bigint | null): number {
    return this.op("read", undefined, () => {
      const f = this.files.readable(fd);
      let off = 0;
      let len: number;
      let pos: number | bigint | null | undefined;
      if (typeof offset === "object" && offset !== null) {
        off = offset.offset ?? 0; len = offset.length ?? buffer.length - off; pos = offset.position;
      } else {
        off = offset ?? 0; len = length ?? buffer.length - off; pos = position;
      }
      if (off < 0 || len < 0 || off + len > buffer.length) throw new Ext4Error("ERR_OUT_OF_RANGE", "offset/length out of the buffer's range");
      const usePos = pos === null || pos === undefined || pos === -1 || pos === -1n ? f.pos : Number(pos);
      if (isDir(f.inode)) throw new Ext4Error("EISDIR", "illegal operation on a directory");
      const n = this.readInode(f.inode, usePos, buffer.subarray(off, off + len), f.ra);
      if (f.dropFrom !== undefined) this.dropBehindRead(f, usePos, n, len);
      if (pos === null || pos === undefined || pos === -1 || pos === -1n) f.pos += n;
      this.atime(f.inode, (f.mode.flags & O_NOATIME) !== 0);
      return n;
    });
  }

  fstatSync(fd: number, opts: { bigint?: boolean } = {}): Stats | BigIntStats {
    return this.op("fstat", undefined, () => this.statOf(this.fd(fd).inode, opts.bigint ?? false));
  }

  closeSync(fd: number): void {
    this.op("close", undefined, () => {
      const inode = this.files.remove(fd).inode;
      try {
        // ext4_release_file: a file truncated to 0 gets its new delayed blocks allocated at close (auto_da_alloc).
        if (inode.testState(STATE.DA_ALLOC_CLOSE)) {
          inode.clearState(STATE.DA_ALLOC_CLOSE);
          this.ctx.io(inode).allocDaBlocks(inode);
        }
      } finally {
        this.fs.iput(inode);
      }
    });
  }

  /** As node's: opens lazily (an open failure is an 'error' event), emits 'open' and 'ready'; takes fd, start, end (inclusive). */
  createReadStream(path: PathLike | null, opts: ReadStreamOptions | BufferEncoding = {}): VolumeReadStream & Readable {
    const o = typeof opts === "string" ? { encoding: opts } : opts;
    if (o.fd === undefined || path !== null) pathBytes(path as PathLike); // a bad path type throws now, as node's does
    return new VolumeReadStream(this, path ?? undefined, o);
  }

  // ---- writing (node's names, arguments and results; the logic is in namespace.ts and file-write.ts) ----

  /** writeSync(fd, buffer, offset?, length?, position?), (fd, buffer, { offset, length, position }) or (fd, string, position?, encoding?). */
  writeSync(fd: number, buffer: ArrayBufferView | string, offsetOrOptions?: number | null | { offset?: number; length?: number; position?: number | null }, length?: number | BufferEncoding | null, position?: number | bigint | null): number {
    validFd(fd);
    const { data, position: pos } = writeArgs(buffer, offsetOrOptions, length, position);
    return this.op("write", undefined, () => vfsWrite(this.ctx, this.files.get(fd), data, pos));
  }

  writevSync(fd: number, buffers: readonly ArrayBufferView[], position?: number | null): number {
    validFd(fd);
    const bufs = bufferArray(buffers);
    return this.op("write", undefined, () => vfsWritev(this.ctx, this.files.get(fd), bufs, typeof position === "number" ? position : null));
  }

  /** writeFileSync(path | fd, data, { encoding, mode, flag, flush } | encoding): a path is opened with flag (default "w"); an fd is written at its position. */
  writeFileSync(file: PathLike | number, data: string | ArrayBufferView, opts?: BufferEncoding | { encoding?: BufferEncoding | null; mode?: number | string; flag?: string | number; flush?: boolean } | null): void {
    const o = options(opts, { encoding: "utf8" as BufferEncoding | null, mode: 0o666 as number | string, flag: "w" as string | number, flush: false });
    const bytes = fileData(data, o.encoding ?? "utf8");
    const fd = typeof file === "number" ? validFd(file) : this.openSync(file, o.flag ?? "w", o.mode);
    try {
      for (let off = 0; off < bytes.length; ) off += this.writeSync(fd, bytes, off, bytes.length - off, null);
      if (o.flush) this.fsyncSync(fd);
    } finally {
      if (typeof file !== "number") this.closeSync(fd);
    }
  }

  /** appendFileSync: writeFileSync with flag "a" (always "a" for an fd, as node). */
  appendFileSync(file: PathLike | number, data: string | ArrayBufferView, opts?: BufferEncoding | { encoding?: BufferEncoding | null; mode?: number | string; flag?: string | number; flush?: boolean } | null): void {
    const o = options(opts, { encoding: "utf8" as BufferEncoding | null, mode: 0o666 as number | string, flag: "a" as string | number });
    if (!o.flag || typeof file === "number") o.flag = "a";
    this.writeFileSync(file, data, o);
  }

  fsyncSync(fd: number): void {
    validFd(fd);
    this.op("fsync", undefined, () => vfsFsync(this.ctx, this.files.get(fd).inode, false));
  }

  fdatasyncSync(fd: number): void {
    validFd(fd);
    this.op("fdatasync", undefined, () => vfsFsync(this.ctx, this.files.get(fd).inode, true));
  }

  /** ftruncate(fd, len = 0); a negative len is 0, as node's. */
  ftruncateSync(fd: number, len?: number): void {
    validFd(fd);
    const size = lengthArg(len);
    this.op("ftruncate", undefined, () => vfsFtruncate(this.ctx, this.files.get(fd), size));
  }

  /** truncate(path, len = 0): as node's, an open with "r+" then ftruncate (errors name the open). */
  truncateSync(path: PathLike | number, len?: number): void {
    if (typeof path === "number") return this.ftruncateSync(path, len);
    const size = lengthArg(len);
    const fd = this.openSync(path, "r+");
    try {
      this.ftruncateSync(fd, size);
    } finally {
      this.closeSync(fd);
    }
  }

  /** mkdir(2); with `recursive`, every missing parent too, returning the first directory made (or undefined). */
  mkdirSync(path: PathLike, opts?: number | string | { recursive?: boolean; mode?: number | string }): string | undefined {
    const o = typeof opts === "object" && opts !== null ? opts : { mode: opts };
    const mode = parseFileMode(o.mode, "mode", 0o777);
    pathBytes(path);
    return this.op("mkdir", path, () => {
      if (o.recursive) return vfsMkdirRecursive(this.ctx, path, mode);
      vfsMkdir(this.ctx, path, mode);
      return undefined;
    });
  }

  /** rmdir(2) (node's deprecated `recursive` is rmSync's). */
  rmdirSync(path: PathLike, opts?: { recursive?: boolean }): void {
    pathBytes(path);
    if (opts?.recursive) return this.rmSync(path, { recursive: true, force: false, allowMissing: false });
    this.op("rmdir", path, () => vfsRmdir(this.ctx, path));
  }

  /** rm -r / -f as node's rmSync: lstat first (ENOENT ignored with force), a directory only with recursive. */
  rmSync(path: PathLike, opts: { recursive?: boolean; force?: boolean; maxRetries?: number; retryDelay?: number; allowMissing?: boolean } = {}): void {
    pathBytes(path);
    let st: Stats | undefined;
    try {
      st = this.lstatSync(path);
    } catch (e) {
      if (opts.force && (e as Ext4Error).code === "ENOENT") return;
      throw e;
    }
    if (st.isDirectory() && !opts.recursive) throw rmIsDirectory(pathText(path));
    this.rimraf(path, st.isDirectory());
  }

  private rimraf(path: PathLike, dir: boolean): void {
    if (!dir) return this.unlinkSync(path);
    const base = pathBytes(path);
    const prefix = base[base.length - 1] === 0x2f ? base : Buffer.concat([base, SLASH]);
    for (const e of this.readdirSync(path, { withFileTypes: true })) {
      this.rimraf(Buffer.concat([prefix, e.rawName]), e.isDirectory());
    }
    this.op("rmdir", path, () => vfsRmdir(this.ctx, path));
  }

  unlinkSync(path: PathLike): void {
    pathBytes(path);
    this.op("unlink", path, () => vfsUnlink(this.ctx, path));
  }

  /** rename(2); the extension's flags are renameat2's: { noreplace, exchange, whiteout }. */
  renameSync(oldPath: PathLike, newPath: PathLike, flags?: RenameFlags): void {
    pathBytes(oldPath);
    pathBytes(newPath);
    this.op("rename", oldPath, () => vfsRename(this.ctx, oldPath, newPath, flags), newPath);
  }

  linkSync(existingPath: PathLike, newPath: PathLike): void {
    pathBytes(existingPath);
    pathBytes(newPath);
    this.op("link", existingPath, () => vfsLink(this.ctx, existingPath, newPath), newPath);
  }

  /** symlink(2); `type` is Windows' and ignored, as node on Linux ignores it. */
  symlinkSync(target: PathLike, path: PathLike, _type?: string | null): void {
    pathBytes(target);
    pathBytes(path);
    this.op("symlink", target, () => vfsSymlink(this.ctx, target, path), path);
  }

  /** Extension: mknod(2) (S_IFCHR / S_IFBLK need root; dev as makedev(major, minor) or a (major << 8 | minor) number). */
  mknodSync(path: PathLike, mode: number, dev = 0): void {
    pathBytes(path);
    validateInt32(mode, "mode", 0);
    this.op("mknod", path, () => vfsMknod(this.ctx, path, mode, dev));
  }

  /** The inode of a path held (iget) for fn: attribute changes go to the one in-core object. */
  private held<T>(syscall: string, path: PathLike, follow: boolean, fn: (inode: Ext4Inode) => T): T {
    return this.op(syscall, path, () => {
      const inode = this.fs.iget(resolve(this.fs, path, follow, syscall).inode.ino);
      try { return fn(inode); } finally { this.fs.iput(inode); }
    });
  }

  chmodSync(path: PathLike, mode: number | string): void {
    pathBytes(path);
    const m = parseFileMode(mode, "mode", 0);
    this.held("chmod", path, true, (i) => vfsChmod(this.ctx, i, m));
  }

  fchmodSync(fd: number, mode: number | string): void {
    validFd(fd);
    const m = parseFileMode(mode, "mode", 0);
    this.op("fchmod", undefined, () => vfsChmod(this.ctx, this.files.get(fd).inode, m));
  }

  chownSync(path: PathLike, uid: number, gid: number): void {
    pathBytes(path);
    const u = idArg(uid, "uid"), g = idArg(gid, "gid");
    this.held("chown", path, true, (i) => vfsChown(this.ctx, i, u, g));
  }

  lchownSync(path: PathLike, uid: number, gid: number): void {
    pathBytes(path);
    const u = idArg(uid, "uid"), g = idArg(gid, "gid");
    this.held("lchown", path, false, (i) => vfsChown(this.ctx, i, u, g));
  }

  fchownSync(fd: number, uid: number, gid: number): void {
    validFd(fd);
    const u = idArg(uid, "uid"), g = idArg(gid, "gid");
    this.op("fchown", undefined, () => vfsChown(this.ctx, this.files.get(fd).inode, u, g));
  }

  /** utimes(path, atime, mtime): Dates, seconds (numbers or numeric strings), as node's. */
  utimesSync(path: PathLike, atime: Date | number | string | bigint, mtime: Date | number | string | bigint): void {
    pathBytes(path);
    const a = timeArg(atime, "time"), m = timeArg(mtime, "time");
    this.held("utime", path, true, (i) => vfsUtimes(this.ctx, i, a, m));
  }

  lutimesSync(path: PathLike, atime: Date | number | string | bigint, mtime: Date | number | string | bigint): void {
    pathBytes(path);
    const a = timeArg(atime, "time"), m = timeArg(mtime, "time");
    this.held("lutime", path, false, (i) => vfsUtimes(this.ctx, i, a, m));
  }

  futimesSync(fd: number, atime: Date | number | string | bigint, mtime: Date | number | string | bigint): void {
    validFd(fd);
    const a = timeArg(atime, "time"), m = timeArg(mtime, "time");
    this.op("futime", undefined, () => vfsUtimes(this.ctx, this.files.get(fd).inode, a, m));
  }

  /**
   * copyFileSync(src, dest, mode = 0) within the image, as libuv copies:
   * dest opened "w" (with COPYFILE_EXCL "wx") with src's mode, truncated,
   * chmod'ed to src's mode, the bytes copied. COPYFILE_FICLONE_FORCE is
   * EOPNOTSUPP (ext4 cannot clone).
   */
  copyFileSync(src: PathLike, dest: PathLike, mode = 0): void {
    pathBytes(src);
    pathBytes(dest);
    validateInt32(mode, "mode", 0, 7);
    this.op("copyfile", src, () => copyFile(this.copyOps(), src, dest, mode), dest);
  }

  private copyOps() {
    return {
      ctx: this.ctx, files: this.files,
      open: (p: PathLike, flags: number, perm: number) => {
        const { inode, created } = openPath(this.ctx, p, flags, perm);
        if (flags & O_TRUNC && !created && isReg(inode)) {
          try { vfsTruncate(this.ctx, inode, 0); } catch (e) { this.fs.iput(inode); throw e; }
        }
        return this.files.add({ inode, pos: 0, ra: new ReadaheadState(), path: pathText(p), mode: fileMode(flags) });
      },
      read: (fd: number, buf: Uint8Array, pos: number) => this.readInode(this.files.readable(fd).inode, pos, buf, this.files.get(fd).ra),
      close: (fd: number) => this.fs.iput(this.files.remove(fd).inode),
    };
  }

  /** Extension: fallocate(2) on an open file: { keepSize, punchHole, zeroRange, collapseRange, insertRange } (punchHole needs keepSize, as the kernel). */
  fallocateSync(fd: number, offset: number, length: number, opts: FallocateFlags = {}): void {
    validFd(fd);
    this.op("fallocate", undefined, () => vfsFallocateFile(this.ctx, this.files.get(fd), offset, length, opts));
  }

  /** Extension: sync(2) for this volume: dirty data written back and waited, the journal committed, the superblock written. */
  sync(): void {
    this.op("sync", undefined, () => writebackAll(this.ctx));
  }

  /** As node's: opens lazily ("w", 0o666 by default; an open failure is an 'error' event), emits 'open' and 'ready'; takes fd, start, flags, mode, autoClose, flush. */
  createWriteStream(path: PathLike | null, opts: WriteStreamOptions | BufferEncoding = {}): VolumeWriteStream & Writable {
    const o = typeof opts === "string" ? { encoding: opts } : opts;
    if (o.fd === undefined || path !== null) pathBytes(path as PathLike);
    return new VolumeWriteStream(this, path ?? undefined, o);
  }

  // ---- xattrs ------------------------------------------------------------

  listxattr(path: PathLike, opts: { noFollow?: boolean } = {}): string[] {
    return this.op("listxattr", path, () => inodeXattrs(this.fs, resolve(this.fs, path, !opts.noFollow, "listxattr").inode)
      .filter((x) => XATTR_VISIBLE.has(x.nameIndex)).map((x) => x.name));
  }

  getxattr(path: PathLike, name: string, opts: { noFollow?: boolean } = {}): Buffer {
    return this.op("getxattr", path, () => {
      const inode = resolve(this.fs, path, !opts.noFollow, "getxattr").inode;
      const x = this.visibleXattrs(inode).find((v) => v.name === name);
      if (!x) throw new Ext4Error("ENODATA", "no data available");
      return x.value;
    });
  }

  /** setxattr(2) / lsetxattr (noFollow); `flag` as XATTR_CREATE / XATTR_REPLACE. ACLs in the xattr encoding. */
  setxattr(path: PathLike, name: string, value: Uint8Array | string, opts: { flag?: "create" | "replace"; noFollow?: boolean } = {}): void {
    this.op("setxattr", path, () => {
      const bytes = typeof value === "string" ? Buffer.from(value) : value;
      checkXattrArgs(name, bytes); // before the path, as setxattr_copy
      const inode = resolve(this.fs, path, !opts.noFollow, "setxattr").inode;
      vfsSetxattr(this.fs, inode, name, bytes, { create: opts.flag === "create", replace: opts.flag === "replace" });
    });
  }

  /** removexattr(2) / lremovexattr (noFollow). */
  removexattr(path: PathLike, name: string, opts: { noFollow?: boolean } = {}): void {
    this.op("removexattr", path, () => {
      checkXattrArgs(name);
      vfsRemovexattr(this.fs, resolve(this.fs, path, !opts.noFollow, "removexattr").inode, name);
    });
  }

  /**
   * The xattrs getxattr(2) shows: ACLs in the xattr encoding, not ext4's
   * on-disk one, and an ACL header without entries is no ACL.
   */
  private visibleXattrs(inode: Inode): { name: string; value: Buffer }[] {
    const out: { name: string; value: Buffer }[] = [];
    for (const x of inodeXattrs(this.fs, inode)) {
      if (!XATTR_VISIBLE.has(x.nameIndex)) continue;
      if (x.nameIndex !== XATTR_INDEX_POSIX_ACL_ACCESS && x.nameIndex !== XATTR_INDEX_POSIX_ACL_DEFAULT) {
        out.push({ name: x.name, value: Buffer.from(x.value) });
        continue;
      }
      const acl = aclFromDisk(x.value, { ino: inode.ino });
      if (acl) out.push({ name: x.name, value: Buffer.from(aclToXattr(acl)) });
    }
    return out;
  }

  /** Resolved inode of a path (for tools: get, ls -l). */
  inodeOf(path: PathLike, follow = false): Inode {
    return this.op(follow ? "stat" : "lstat", path, () => resolve(this.fs, path, follow, follow ? "stat" : "lstat").inode);
  }

  // ---- by inode: walks that hold a directory, not a path -------------------
  // ls -R and get walk trees of any depth: they list a directory inode and go
  // to each child by the inode number its entry names (as getdents hands it
  // over), so no path is re-resolved and none has to fit PATH_MAX. `shown` is
  // only what errors name.

  /**
   * Entries of a directory inode without "." and "..", with inode numbers and file types.
   * rawTypes: the types as the entries hold them (FT.UNKNOWN without the filetype feature),
   * as getdents gives d_type, so no child inode is read (ls lists names past a bad inode).
   */
  readdirInode(dir: Inode, shown?: string, rawTypes = false): DirEntryInfo[] {
    return this.op("scandir", shown, () => {
      if (!isDir(dir)) throw new Ext4Error("ENOTDIR", "not a directory");
      return this.entries(dir, rawTypes);
    });
  }

  /** The inode a directory entry names, refused as the path walk refuses it when unused. */
  inodeByNumber(ino: number, shown?: string): Inode {
    return this.op("lstat", shown, () => {
      return this.fs.inodeByEntry(ino);
    });
  }

  /** readlink of a symlink inode. */
  readlinkInode(inode: Inode, shown?: string): Buffer {
    return this.op("readlink", shown, () => {
      if (!isLnk(inode)) throw new Ext4Error("EINVAL", "not a symbolic link");
      return Buffer.from(this.symlinkTarget(inode));
    });
  }

  /** The xattrs listxattr shows, with their values. */
  xattrsOfInode(inode: Inode, shown?: string): { name: string; value: Buffer }[] {
    return this.op("listxattr", shown, () => this.visibleXattrs(inode));
  }

  /**
   * Opens an inode for readSync, as openSync opens a path. With `dropBehind`
   * (the kernel's RWF_DONTCACHE), each read through the fd then releases the
   * file's clean cached folios behind it: a reader that reads a file once (a
   * copy, cat) keeps the cache for metadata instead of filling it with data.
   */
  openInode(inode: Inode, shown = `<inode ${inode.ino}>`, opts: { dropBehind?: boolean } = {}): number {
    return this.op("open", shown, () => {
      return this.files.add({ inode: this.fs.iget(inode.ino), pos: 0, ra: new ReadaheadState(), path: shown, mode: fileMode(O_RDONLY), dropFrom: opts.dropBehind ? 0 : undefined });
    });
  }

  private dropBehindRead(f: OpenFile, pos: number, n: number, len: number): void {
    // After a jump forward (a hole skipped), no folio (2 MiB at most) reaches back further than one folio before pos.
    f.dropFrom = Math.max(f.dropFrom!, Math.floor(pos / PAGE_SIZE) - (1 << MAX_FOLIO_ORDER));
    f.dropFrom = dropBehind(this.fs, f.inode, f.dropFrom, pos + n, n < len || pos + n >= f.inode.size);
  }

  /**
   * Where a file has data (FIEMAP's question, in blocks): from block lblk, the
   * length of the run (at most max) that is all hole or all allocated. Inline
   * data is all data.
   */
  blockRunInode(inode: Inode, lblk: number, max: number): { hole: boolean; blocks: number } {
    this.check("fiemap");
    if (inode.flags & INODE_FLAGS.INLINE_DATA) return { hole: false, blocks: max };
    const m = this.fs.mapBlocks(inode, lblk, max);
    return { hole: m.kind === MapKind.Hole, blocks: m.len };
  }

  /**
   * statfs(2) in node's fs.statfsSync shape, as ext4_statfs counts: blocks
   * less the metadata overhead, free blocks less the delalloc-reserved ones,
   * available less the root reserve and the reserved clusters. `path` (any
   * path on the volume) is optional; `bigint` gives bigints.
   */
  statfsSync(path?: PathLike, opts?: { bigint?: false }): StatFs<number>;
  statfsSync(path: PathLike | undefined, opts: { bigint: true }): StatFs<bigint>;
  statfsSync(path?: PathLike, opts: { bigint?: boolean } = {}): StatFs {
    return this.op("statfs", path, () => {
      if (path !== undefined) resolve(this.fs, path, true, "statfs");
      return statfs(this.fs, opts.bigint ?? false);
    });
  }

  /** Drops every clean cached folio, data and metadata (like `echo 3 > /proc/sys/vm/drop_caches`). */
  dropCaches(): void {
    this.check("drop_caches");
    this.fs.cache.dropAll();
  }

  /**
   * Writes everything back and leaves the image clean: open descriptors
   * closed (an unlinked open file is freed then), dirty data written and
   * waited, the journal committed and checkpointed, the superblock clean.
   */
  unmount(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      // The fs unmount writes the data back (sync_filesystem) and keeps an aborted journal's state for replay.
      if (!this.fs.readOnly) for (const [, f] of this.files.all()) this.fs.iput(f.inode);
    } finally {
      this.fs.unmount();
    }
  }

  // ---- access, opendir ----------------------------------------------------

  /** access(2) for this process: F_OK, or R_OK/W_OK/X_OK as Linux decides them (EROFS for W_OK on a read-only mount). */
  accessSync(path: PathLike, mode: number = F_OK): void {
    const want = accessMode(mode);
    this.op("access", path, () => checkAccess(this.fs, resolve(this.fs, path, true, "access").inode, want));
  }

  /** A Dir over the directory's entries in on-disk order (node's opendir; readdir sorts, this does not). */
  opendirSync(path: PathLike, opts: { encoding?: Encoding; bufferSize?: number } = {}): Dir {
    return this.op("opendir", path, () => {
      const dir = resolve(this.fs, path, true, "opendir").inode;
      if (!isDir(dir)) throw new Ext4Error("ENOTDIR", "not a directory");
      this.atime(dir);
      const parentPath = pathText(path);
      return new Dir(parentPath, this.entries(dir).map((e) => new Ext4Dirent(decodeName(e.name, opts.encoding), e.name, parentPath, e.ino, e.fileType)));
    });
  }

  // ---- callback forms (node's fs.x(args, cb)) ---------------------------------
  // The work is done at once; the callback runs on a later turn with (err) or
  // (null, result). Only argument errors (node's own TypeErrors) are thrown.

  /** Linux's values, whatever the runtime's own constants are. */
  readonly constants = Object.freeze({
    F_OK, R_OK, W_OK, X_OK, S_IFMT, S_IFREG, S_IFDIR, S_IFCHR, S_IFBLK, S_IFIFO, S_IFLNK, S_IFSOCK,
    O_RDONLY, O_WRONLY, O_RDWR, O_CREAT, O_EXCL, O_NOCTTY, O_TRUNC, O_APPEND, O_DIRECTORY, O_NOATIME, O_NOFOLLOW,
    O_SYNC, O_DSYNC, O_DIRECT, O_NONBLOCK, COPYFILE_EXCL, COPYFILE_FICLONE, COPYFILE_FICLONE_FORCE,
  });

  readFile(path: PathLike | number, cb: Callback<string | Buffer>): void;
  readFile(path: PathLike | number, opts: Encoding | (EncOpt & { flag?: string }), cb: Callback<string | Buffer>): void;
  readFile(path: PathLike | number, ...a: unknown[]): void { later(a, (opts) => [this.readFileSync(path, opts as Encoding)]); }

  stat(path: PathLike, cb: Callback<Stats>): void;
  stat(path: PathLike, opts: { bigint?: boolean }, cb: Callback<Stats | BigIntStats>): void;
  stat(path: PathLike, ...a: unknown[]): void { later(a, (opts) => [this.statSync(path, (opts ?? {}) as never)]); }

  lstat(path: PathLike, cb: Callback<Stats>): void;
  lstat(path: PathLike, opts: { bigint?: boolean }, cb: Callback<Stats | BigIntStats>): void;
  lstat(path: PathLike, ...a: unknown[]): void { later(a, (opts) => [this.lstatSync(path, (opts ?? {}) as never)]); }

  fstat(fd: number, cb: Callback<Stats>): void;
  fstat(fd: number, opts: { bigint?: boolean }, cb: Callback<Stats | BigIntStats>): void;
  fstat(fd: number, ...a: unknown[]): void { later(a, (opts) => [this.fstatSync(fd, (opts ?? {}) as never)]); }

  readdir(path: PathLike, cb: Callback<string[]>): void;
  readdir(path: PathLike, opts: Encoding | { withFileTypes?: boolean; encoding?: Encoding; recursive?: boolean }, cb: Callback<(string | Buffer | Dirent)[]>): void;
  readdir(path: PathLike, ...a: unknown[]): void { later(a, (opts) => [this.readdirSync(path, opts as never)]); }

  readlink(path: PathLike, cb: Callback<string>): void;
  readlink(path: PathLike, opts: Encoding | EncOpt, cb: Callback<string | Buffer>): void;
  readlink(path: PathLike, ...a: unknown[]): void { later(a, (opts) => [this.readlinkSync(path, opts as Encoding)]); }

  realpath(path: PathLike, cb: Callback<string>): void;
  realpath(path: PathLike, opts: Encoding | EncOpt, cb: Callback<string | Buffer>): void;
  realpath(path: PathLike, ...a: unknown[]): void { later(a, (opts) => [this.realpathSync(path, opts as Encoding)]); }

  access(path: PathLike, cb: (err: Error | null) => void): void;
  access(path: PathLike, mode: number, cb: (err: Error | null) => void): void;
  access(path: PathLike, ...a: unknown[]): void { later(a, (mode) => (this.accessSync(path, mode as number), [])); }

  /** node's deprecated fs.exists: the callback gets only a boolean. */
  exists(path: PathLike, cb: (exists: boolean) => void): void {
    if (typeof cb !== "function") throw badCallback(cb);
    const yes = this.existsSync(path);
    defer(() => cb(yes));
  }

  open(path: PathLike, cb: Callback<number>): void;
  open(path: PathLike, flags: string | number, cb: Callback<number>): void;
  open(path: PathLike, flags: string | number, mode: number, cb: Callback<number>): void;
  open(path: PathLike, ...a: unknown[]): void { later(a, (flags, mode) => [this.openSync(path, (flags ?? "r") as string, mode as number)]); }

  /** read(fd, buffer, offset, length, position, cb), read(fd, buffer[, options], cb) or read(fd[, options], cb); cb(err, bytesRead, buffer). */
  read(fd: number, buffer: Uint8Array, offset: number, length: number, position: number | bigint | null, cb: ReadCallback): void;
  read(fd: number, buffer: Uint8Array, opts: { offset?: number; length?: number; position?: number | bigint | null }, cb: ReadCallback): void;
  read(fd: number, buffer: Uint8Array, cb: ReadCallback): void;
  read(fd: number, opts: { buffer?: Uint8Array; offset?: number; length?: number; position?: number | bigint | null }, cb: ReadCallback): void;
  read(fd: number, cb: ReadCallback): void;
  read(fd: number, ...a: unknown[]): void {
    later(a, (...args) => {
      let [buffer, offset, length, position] = args as [unknown, unknown, unknown, unknown];
      if (!(buffer instanceof Uint8Array)) {
        const o = (buffer ?? {}) as { buffer?: Uint8Array; offset?: number; length?: number; position?: number | null };
        buffer = o.buffer ?? Buffer.alloc(16384);
        offset = { offset: o.offset, length: o.length, position: o.position };
      }
      const buf = buffer as Uint8Array;
      const n = typeof offset === "object" && offset !== null
        ? this.readSync(fd, buf, offset as { offset?: number })
        : this.readSync(fd, buf, offset as number | undefined, length as number | undefined, position as number | null | undefined);
      return [n, buf];
    });
  }

  close(fd: number, cb: (err: Error | null) => void = () => {}): void { later([cb], () => (this.closeSync(fd), [])); }

  // Write calls, callback forms.
  /** write(fd, buffer[, offset[, length[, position]]], cb) -> cb(err, bytesWritten, buffer); write(fd, string[, position[, encoding]], cb) -> cb(err, written, string). */
  write(fd: number, buffer: ArrayBufferView | string, ...a: unknown[]): void {
    later(a, (...args) => [this.writeSync(fd, buffer, ...(args as [never, never, never])), buffer]);
  }
  /** writev(fd, buffers[, position], cb) -> cb(err, bytesWritten, buffers). */
  writev(fd: number, buffers: ArrayBufferView[], ...a: unknown[]): void {
    later(a, (position) => [this.writevSync(fd, buffers, position as number | null), buffers]);
  }
  writeFile(file: PathLike | number, data: string | ArrayBufferView, ...a: unknown[]): void {
    later(a, (opts) => (this.writeFileSync(file, data, opts as never), []));
  }
  appendFile(file: PathLike | number, data: string | ArrayBufferView, ...a: unknown[]): void {
    later(a, (opts) => (this.appendFileSync(file, data, opts as never), []));
  }
  fsync(fd: number, cb: (err: Error | null) => void): void { later([cb], () => (this.fsyncSync(fd), [])); }
  fdatasync(fd: number, cb: (err: Error | null) => void): void { later([cb], () => (this.fdatasyncSync(fd), [])); }
  ftruncate(fd: number, ...a: unknown[]): void { later(a, (len) => (this.ftruncateSync(fd, len as number), [])); }
  truncate(path: PathLike, ...a: unknown[]): void { later(a, (len) => (this.truncateSync(path, len as number), [])); }
  /** mkdir(path[, options], cb) -> cb(err, firstCreated) with recursive, as node's. */
  mkdir(path: PathLike, ...a: unknown[]): void {
    later(a, (opts) => {
      const first = this.mkdirSync(path, opts as never);
      return typeof opts === "object" && opts !== null && (opts as { recursive?: boolean }).recursive ? [first] : [];
    });
  }
  rmdir(path: PathLike, ...a: unknown[]): void { later(a, (opts) => (this.rmdirSync(path, opts as never), [])); }
  rm(path: PathLike, ...a: unknown[]): void { later(a, (opts) => (this.rmSync(path, (opts ?? {}) as never), [])); }
  unlink(path: PathLike, cb: (err: Error | null) => void): void { later([cb], () => (this.unlinkSync(path), [])); }
  rename(oldPath: PathLike, newPath: PathLike, cb: (err: Error | null) => void): void { later([cb], () => (this.renameSync(oldPath, newPath), [])); }
  link(existingPath: PathLike, newPath: PathLike, cb: (err: Error | null) => void): void { later([cb], () => (this.linkSync(existingPath, newPath), [])); }
  symlink(target: PathLike, path: PathLike, ...a: unknown[]): void { later(a, (type) => (this.symlinkSync(target, path, type as string), [])); }
  chmod(path: PathLike, mode: number | string, cb: (err: Error | null) => void): void { later([cb], () => (this.chmodSync(path, mode), [])); }
  fchmod(fd: number, mode: number | string, cb: (err: Error | null) => void): void { later([cb], () => (this.fchmodSync(fd, mode), [])); }
  chown(path: PathLike, uid: number, gid: number, cb: (err: Error | null) => void): void { later([cb], () => (this.chownSync(path, uid, gid), [])); }
  lchown(path: PathLike, uid: number, gid: number, cb: (err: Error | null) => void): void { later([cb], () => (this.lchownSync(path, uid, gid), [])); }
  fchown(fd: number, uid: number, gid: number, cb: (err: Error | null) => void): void { later([cb], () => (this.fchownSync(fd, uid, gid), [])); }
  utimes(path: PathLike, atime: Date | number | string | bigint, mtime: Date | number | string | bigint, cb: (err: Error | null) => void): void { later([cb], () => (this.utimesSync(path, atime, mtime), [])); }
  lutimes(path: PathLike, atime: Date | number | string | bigint, mtime: Date | number | string | bigint, cb: (err: Error | null) => void): void { later([cb], () => (this.lutimesSync(path, atime, mtime), [])); }
  futimes(fd: number, atime: Date | number | string | bigint, mtime: Date | number | string | bigint, cb: (err: Error | null) => void): void { later([cb], () => (this.futimesSync(fd, atime, mtime), [])); }
  copyFile(src: PathLike, dest: PathLike, ...a: unknown[]): void { later(a, (mode) => (this.copyFileSync(src, dest, (mode ?? 0) as number), [])); }
  statfs(path: PathLike, ...a: unknown[]): void { later(a, (opts) => [this.statfsSync(path, (opts ?? {}) as never)]); }

  opendir(path: PathLike, cb: Callback<Dir>): void;
  opendir(path: PathLike, opts: { encoding?: Encoding; bufferSize?: number }, cb: Callback<Dir>): void;
  opendir(path: PathLike, ...a: unknown[]): void { later(a, (opts) => [this.opendirSync(path, (opts ?? {}) as never)]); }

  /** Summary of the mount for `info`. */
  get recovery() { return this.fs.recovery; }

  /** What the mount found and read past, as the kernel logs and mounts anyway (a bad group descriptor checksum, read-only). */
  get warnings(): readonly string[] { return this.fs.warnings; }
}

/**
 * libuv's texts for the codes node:fs users match on: node words these errors
 * `${code}: ${text}, ${syscall} '${path}'`, and so do we. Codes that carry
 * our own detail (EFSCORRUPTED, EIO, EOPNOTSUPP ...) keep it.
 */
const UV_MESSAGE: Record<string, string> = {
  ENOENT: "no such file or directory", ENOTDIR: "not a directory", EISDIR: "illegal operation on a directory",
  ELOOP: "too many symbolic links encountered", EINVAL: "invalid argument", ENAMETOOLONG: "name too long",
  EBADF: "bad file descriptor", EROFS: "read-only file system", EACCES: "permission denied",
  EPERM: "operation not permitted", EEXIST: "file already exists", ENODATA: "no data available",
  ENOTEMPTY: "directory not empty", ENOSPC: "no space left on device", EMLINK: "too many links",
  EFBIG: "file too large", EBUSY: "resource busy or locked", EXDEV: "cross-device link not permitted",
  ENOTSUP: "operation not supported on socket",
  ESPIPE: "invalid seek", ENODEV: "no such device",
};

/** node's SystemError for rmSync of a directory without `recursive` (ERR_FS_EISDIR). */
function rmIsDirectory(path: string): Error {
  const info = { code: "EISDIR", message: "is a directory", path, syscall: "rm", errno: 21 };
  const e = Object.assign(new Error(`Path is a directory: rm returned EISDIR (is a directory) ${path}`), { code: "ERR_FS_EISDIR", errno: 21, syscall: "rm", path, info });
  e.name = "SystemError";
  return e;
}

/**
 * node:fs functions work when taken off the module (`const { readFileSync } =
 * fs`), and code that is handed an fs module does that: so every method of a
 * volume is bound to it.
 */
function bindMethods(obj: object, proto: object): void {
  for (const name of Object.getOwnPropertyNames(proto)) {
    const d = Object.getOwnPropertyDescriptor(proto, name);
    if (name === "constructor" || !d || typeof d.value !== "function") continue;
    Object.defineProperty(obj, name, { value: d.value.bind(obj), writable: true, configurable: true, enumerable: false });
  }
}

/** Adds syscall and path to errors thrown below the vfs; types stray bounds failures. */
function annotate(e: unknown, syscall: string, path: string | undefined, dest?: string): unknown {
  if (e instanceof Ext4Error) {
    if (e.syscall === undefined || dest !== undefined) {
      // Two-path calls (rename, link, symlink, copyfile) report both paths whatever step failed, as libuv does.
      if (e.syscall === undefined) e.message = `${e.message}, ${syscall}${path !== undefined ? ` '${path}'` : ""}${dest !== undefined ? ` -> '${dest}'` : ""}`;
      e.syscall = syscall;
      if (path !== undefined) e.path = path;
      if (dest !== undefined) e.dest = dest;
    }
    const uv = UV_MESSAGE[e.code];
    const where = `${e.path !== undefined ? ` '${e.path}'` : ""}${e.dest !== undefined ? ` -> '${e.dest}'` : ""}`;
    if (uv !== undefined) e.message = `${e.code}: ${uv}, ${e.syscall}${where}`;
    return e;
  }
  if (isArgumentError(e)) return e; // node's own argument TypeErrors pass through as they are
  if (e instanceof RangeError || e instanceof TypeError) {
    return new Ext4Error("EFSCORRUPTED", `inconsistent metadata: ${(e as Error).message}`, { syscall, path, cause: e });
  }
  return e;
}

export type Callback<T> = (err: Error | null, result?: T) => void;
type ReadCallback = (err: Error | null, bytesRead?: number, buffer?: Uint8Array) => void;

function badCallback(cb: unknown): TypeError {
  const got = cb === undefined ? "undefined" : cb === null ? "null" : typeof cb === "object" ? "an instance of Object" : `type ${typeof cb} (${String(cb)})`;
  return Object.assign(new TypeError(`The "cb" argument must be of type function. Received ${got}`), { code: "ERR_INVALID_ARG_TYPE" });
}

/** node's argument validation errors, which its callback forms throw rather than pass on. */
function isArgumentError(e: unknown): boolean {
  const code = (e as { code?: unknown })?.code;
  return (e instanceof TypeError || e instanceof RangeError) && typeof code === "string" && code.startsWith("ERR_");
}

/** Takes the callback off the end of args, runs fn with the rest, and calls back on a later turn. */
function later(args: unknown[], fn: (...rest: unknown[]) => unknown[]): void {
  const cb = args.pop();
  if (typeof cb !== "function") throw badCallback(cb);
  let out: unknown[];
  try {
    out = fn(...args);
  } catch (e) {
    if (isArgumentError(e)) throw e;
    defer(() => cb(e));
    return;
  }
  defer(() => cb(null, ...out));
}

class VolumePromises {
  constructor(private readonly vol: Volume) {
    bindMethods(this, VolumePromises.prototype);
  }
  async readFile(path: PathLike, opts?: Encoding | EncOpt) { return this.vol.readFileSync(path, opts); }
  readdir(path: PathLike, opts: { withFileTypes: true; encoding?: Encoding; recursive?: boolean }): Promise<Dirent[]>;
  readdir(path: PathLike, opts?: Encoding | { withFileTypes?: false; encoding?: Encoding; recursive?: boolean }): Promise<(string | Buffer)[]>;
  async readdir(path: PathLike, opts?: Encoding | { withFileTypes?: boolean; encoding?: Encoding; recursive?: boolean }): Promise<(string | Buffer | Dirent)[]> {
    return this.vol.readdirSync(path, opts as never);
  }
  async stat(path: PathLike, opts: { bigint?: boolean } = {}) { return this.vol.statSync(path, opts as never); }
  async lstat(path: PathLike, opts: { bigint?: boolean } = {}) { return this.vol.lstatSync(path, opts as never); }
  async readlink(path: PathLike, opts?: Encoding | EncOpt) { return this.vol.readlinkSync(path, opts); }
  async realpath(path: PathLike, opts?: Encoding | EncOpt) { return this.vol.realpathSync(path, opts); }
  async access(path: PathLike, mode: number = F_OK) { this.vol.accessSync(path, mode); }
  async opendir(path: PathLike, opts: { encoding?: Encoding; bufferSize?: number } = {}) { return this.vol.opendirSync(path, opts); }
  async open(path: PathLike, flags: string | number = "r", mode?: number | string) { return new FileHandle(this.vol, this.vol.openSync(path, flags, mode)); }
  async writeFile(file: PathLike | FileHandle, data: string | ArrayBufferView, opts?: Parameters<Volume["writeFileSync"]>[2]) {
    this.vol.writeFileSync(file instanceof FileHandle ? file.fd : file, data, opts);
  }
  async appendFile(file: PathLike | FileHandle, data: string | ArrayBufferView, opts?: Parameters<Volume["appendFileSync"]>[2]) {
    this.vol.appendFileSync(file instanceof FileHandle ? file.fd : file, data, opts);
  }
  async mkdir(path: PathLike, opts?: Parameters<Volume["mkdirSync"]>[1]) { return this.vol.mkdirSync(path, opts); }
  async rmdir(path: PathLike, opts?: { recursive?: boolean }) { this.vol.rmdirSync(path, opts); }
  async rm(path: PathLike, opts?: { recursive?: boolean; force?: boolean }) { this.vol.rmSync(path, opts); }
  async unlink(path: PathLike) { this.vol.unlinkSync(path); }
  async rename(oldPath: PathLike, newPath: PathLike) { this.vol.renameSync(oldPath, newPath); }
  async link(existingPath: PathLike, newPath: PathLike) { this.vol.linkSync(existingPath, newPath); }
  async symlink(target: PathLike, path: PathLike, type?: string | null) { this.vol.symlinkSync(target, path, type); }
  async truncate(path: PathLike, len?: number) { this.vol.truncateSync(path, len); }
  async chmod(path: PathLike, mode: number | string) { this.vol.chmodSync(path, mode); }
  async chown(path: PathLike, uid: number, gid: number) { this.vol.chownSync(path, uid, gid); }
  async lchown(path: PathLike, uid: number, gid: number) { this.vol.lchownSync(path, uid, gid); }
  async utimes(path: PathLike, atime: Date | number | string | bigint, mtime: Date | number | string | bigint) { this.vol.utimesSync(path, atime, mtime); }
  async lutimes(path: PathLike, atime: Date | number | string | bigint, mtime: Date | number | string | bigint) { this.vol.lutimesSync(path, atime, mtime); }
  async copyFile(src: PathLike, dest: PathLike, mode?: number) { this.vol.copyFileSync(src, dest, mode); }
  async statfs(path: PathLike, opts: { bigint?: boolean } = {}) { return this.vol.statfsSync(path, opts as { bigint: true }); }
  async mknod(path: PathLike, mode: number, dev?: number) { this.vol.mknodSync(path, mode, dev); }
  async listxattr(path: PathLike) { return this.vol.listxattr(path); }
  async getxattr(path: PathLike, name: string) { return this.vol.getxattr(path, name); }
  async setxattr(path: PathLike, name: string, value: Uint8Array | string, opts?: { flag?: "create" | "replace"; noFollow?: boolean }) { return this.vol.setxattr(path, name, value, opts); }
  async removexattr(path: PathLike, name: string, opts?: { noFollow?: boolean }) { return this.vol.removexattr(path, name, opts); }
}
