// Path resolution: components as bytes, symlinks followed (at most 40),
// node-style errors carrying the path.

import { Ext4Error } from "../errors.js";
import { Inode, INODE_FLAGS, isDir, isLnk } from "../format/inode.js";
import { nokeyName, readdirHashVersion } from "./nokey-name.js";
import { readDir } from "../fs/dir.js";
import { lookup } from "../fs/dir.js";
import { readSymlink } from "../fs/symlink.js";
import { ROOT_INO, type Ext4 } from "../fs/super.js";

const MAX_SYMLINKS = 40;
const NAME_MAX = 255;
const PATH_MAX = 4096;
const enc = new TextEncoder();

export type PathLike = string | Uint8Array;

export function pathBytes(p: PathLike): Uint8Array {
  if (typeof p === "string") return enc.encode(p);
  if (p instanceof Uint8Array) return p;
  if (p && typeof (p as URL).href === "string") throw new Ext4Error("EINVAL", "URL paths are not supported inside an image");
  throw new Ext4Error("EINVAL", `path must be a string or Buffer (got ${typeof p})`);
}

export function pathText(p: PathLike): string {
  return typeof p === "string" ? p : new TextDecoder().decode(p);
}

function splitComponents(b: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  let start = 0;
  for (let i = 0; i <= b.length; i++) {
    if (i === b.length || b[i] === 0x2f) {
      if (i > start) out.push(b.subarray(start, i));
      start = i + 1;
    }
  }
  return out;
}

export interface Resolved {
  inode: Inode;
  /** The canonical path of what was found, as name bytes from the root. */
  real: Uint8Array[];
}

/**
 * Resolves `path` from the root. `followLast` follows a trailing symlink
 * (stat) or not (lstat). Throws ENOENT, ENOTDIR, ELOOP, ENAMETOOLONG.
 */
export function resolve(fs: Ext4, path: PathLike, followLast: boolean, syscall: string): Resolved {
  const bytes = pathBytes(path);
  const shown = pathText(path);
  if (bytes.includes(0)) throw new Ext4Error("EINVAL", "path contains a NUL byte", { syscall, path: shown });
  if (bytes.length === 0) throw new Ext4Error("ENOENT", "no such file or directory", { syscall, path: shown });
  if (bytes.length > PATH_MAX) throw new Ext4Error("ENAMETOOLONG", "path too long", { syscall, path: shown });
  // A trailing slash names a directory: it follows a final symlink and refuses a non-directory.
  const mustBeDir = bytes.length > 1 && bytes[bytes.length - 1] === 0x2f;
  if (mustBeDir) followLast = true;
  let links = 0;
  // Components still to walk, consumed from the end; symlink targets are pushed on.
  const todo = splitComponents(bytes).reverse();
  let stack: { inode: Inode; name: Uint8Array }[] = [];
  let cur = fs.inode(ROOT_INO);
  while (todo.length > 0) {
    const name = todo.pop()!;
    if (!isDir(cur)) throw new Ext4Error("ENOTDIR", "not a directory", { syscall, path: shown });
    if (name.length === 1 && name[0] === 0x2e) continue;
    if (name.length === 2 && name[0] === 0x2e && name[1] === 0x2e) {
      const up = stack.pop();
      cur = up ? up.inode : fs.inode(ROOT_INO);
      continue;
    }
    if (name.length > NAME_MAX) throw new Ext4Error("ENAMETOOLONG", "name too long", { syscall, path: shown });
    // In an encrypted directory names are shown, and so given back, as no-key names.
    const ino = cur.flags & INODE_FLAGS.ENCRYPT ? nokeyLookup(fs, cur, name) : lookup(fs, cur, name);
    if (ino === 0) throw new Ext4Error("ENOENT", "no such file or directory", { syscall, path: shown });
    const next = fs.inode(ino);
    if (next.linksCount === 0 && next.mode === 0) {
      throw new Ext4Error("EFSCORRUPTED", `directory entry points to unused inode ${ino}`, { syscall, path: shown, ino });
    }
    if (isLnk(next) && (todo.length > 0 || followLast)) {
      if (++links > MAX_SYMLINKS) throw new Ext4Error("ELOOP", "too many levels of symbolic links", { syscall, path: shown });
      const target = readSymlink(fs, next);
      if (target.length === 0) throw new Ext4Error("ENOENT", "empty symbolic link", { syscall, path: shown });
      if (target[0] === 0x2f) {
        stack = [];
        cur = fs.inode(ROOT_INO);
      }
      const parts = splitComponents(target);
      for (let i = parts.length - 1; i >= 0; i--) todo.push(parts[i]);
      continue;
    }
    stack.push({ inode: cur, name });
    cur = next;
  }
  if (mustBeDir && !isDir(cur)) throw new Ext4Error("ENOTDIR", "not a directory", { syscall, path: shown });
  // stack holds parents; the names pushed name each step down.
  return { inode: cur, real: stack.map((s) => s.name) };
}

function nokeyLookup(fs: Ext4, dir: Inode, name: Uint8Array): number {
  const version = readdirHashVersion(fs, dir);
  for (const e of readDir(fs, dir)) {
    const shown = nokeyName(fs, version, e.name);
    if (shown.length === name.length && shown.every((c, i) => c === name[i])) return e.ino;
  }
  return 0;
}
