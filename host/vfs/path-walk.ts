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

export type PathLike = string | Uint8Array | URL;

/** node's isURL: a URL object, or one that looks like it (href and protocol strings). */
function isUrl(p: unknown): p is URL {
  return typeof p === "object" && p !== null && typeof (p as URL).href === "string" && typeof (p as URL).protocol === "string";
}

function typeError(code: string, message: string): TypeError {
  return Object.assign(new TypeError(message), { code });
}

/** A file: URL's path as bytes, percent escapes decoded (node's fileURLToPath, but byte-exact for names that are not UTF-8). */
function fileUrlBytes(u: URL): Uint8Array {
  if (u.protocol !== "file:") throw typeError("ERR_INVALID_URL_SCHEME", "The URL must be of scheme file");
  if (u.hostname !== "") throw typeError("ERR_INVALID_FILE_URL_HOST", 'File URL host must be "localhost" or empty on linux');
  const s = u.pathname;
  if (/%2f/i.test(s)) throw typeError("ERR_INVALID_FILE_URL_PATH", "File URL path must not include encoded / characters");
  const raw = enc.encode(s);
  const out: number[] = [];
  for (let i = 0; i < raw.length; i++) {
    const hex = raw[i] === 0x25 && i + 2 < raw.length ? String.fromCharCode(raw[i + 1], raw[i + 2]) : "";
    if (/^[0-9a-fA-F]{2}$/.test(hex)) { out.push(parseInt(hex, 16)); i += 2; } else out.push(raw[i]);
  }
  return Uint8Array.from(out);
}

/** A path as node's util.inspect shows it in argument errors. */
function shown(p: PathLike): string {
  if (typeof p === "string") return `'${p.replace(/[\x00-\x1f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`)}'`;
  if (p instanceof Uint8Array) return `<Buffer ${[...p.subarray(0, 50)].map((c) => c.toString(16).padStart(2, "0")).join(" ")}${p.length > 50 ? ` ... ${p.length - 50} more bytes` : ""}>`;
  return String(p.href);
}

/** Path bytes from a string (UTF-8), a Buffer/Uint8Array, or a file: URL, as node:fs takes them. */
export function pathBytes(p: PathLike): Uint8Array {
  const b = typeof p === "string" ? enc.encode(p) : p instanceof Uint8Array ? p : isUrl(p) ? fileUrlBytes(p) : null;
  if (b) {
    if (b.includes(0)) {
      throw typeError("ERR_INVALID_ARG_VALUE", `The argument 'path' must be a string, Uint8Array, or URL without null bytes. Received ${shown(p)}`);
    }
    return b;
  }
  const got = p === null ? "null" : typeof p === "object" ? "an instance of Object" : `type ${typeof p} (${String(p)})`;
  throw typeError("ERR_INVALID_ARG_TYPE", `The "path" argument must be of type string or an instance of Buffer or URL. Received ${got}`);
}

/** The path as text for messages and error.path. */
export function pathText(p: PathLike): string {
  if (typeof p === "string") return p;
  if (p instanceof Uint8Array) return new TextDecoder().decode(p);
  if (isUrl(p)) {
    try { return new TextDecoder().decode(fileUrlBytes(p)); } catch { return p.href; }
  }
  return String(p);
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
export function resolve(fs: Ext4, path: PathLike, followLast: boolean, syscall: string, shownAs?: string): Resolved {
  const bytes = pathBytes(path);
  const shown = shownAs ?? pathText(path);
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
  let cur: Inode = fs.inode(ROOT_INO);
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
    const next = fs.inodeByEntry(ino);
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

export interface ResolvedParent {
  /** The directory the last component is in (not referenced). */
  dir: Inode;
  /** Canonical path of `dir` from the root, as name bytes. */
  dirPath: Uint8Array[];
  /** The last component; undefined for the root itself ("/"). */
  name: Uint8Array | undefined;
  /** The path ended in "/": the last component must be (or become) a directory. */
  trailingSlash: boolean;
}

const isDot = (n: Uint8Array) => n.length === 1 && n[0] === 0x2e;
const isDotDot = (n: Uint8Array) => n.length === 2 && n[0] === 0x2e && n[1] === 0x2e;
export { isDot, isDotDot };

/**
 * The parent directory of a path and its last component, as the kernel's
 * filename_parentat: every component but the last resolved (symlinks
 * followed), the last left to the caller. "." and ".." come back as they are.
 */
export function resolveParent(fs: Ext4, path: PathLike, syscall: string, shownAs?: string): ResolvedParent {
  const bytes = pathBytes(path);
  const shown = shownAs ?? pathText(path);
  if (bytes.length === 0) throw new Ext4Error("ENOENT", "no such file or directory", { syscall, path: shown });
  if (bytes.length > PATH_MAX) throw new Ext4Error("ENAMETOOLONG", "path too long", { syscall, path: shown });
  const parts = splitComponents(bytes);
  const trailingSlash = bytes[bytes.length - 1] === 0x2f;
  if (parts.length === 0) return { dir: fs.inode(ROOT_INO), dirPath: [], name: undefined, trailingSlash };
  const name = parts[parts.length - 1];
  if (name.length > NAME_MAX) throw new Ext4Error("ENAMETOOLONG", "name too long", { syscall, path: shown });
  const prefix = parts.slice(0, -1);
  const r = resolve(fs, prefix.length ? joinSlash(prefix) : SLASH, true, syscall, shown);
  if (!isDir(r.inode)) throw new Ext4Error("ENOTDIR", "not a directory", { syscall, path: shown });
  return { dir: r.inode, dirPath: r.real, name, trailingSlash };
}

const SLASH = Uint8Array.of(0x2f);

function joinSlash(parts: Uint8Array[]): Uint8Array {
  const out: number[] = [0x2f];
  parts.forEach((p, i) => { if (i) out.push(0x2f); for (const c of p) out.push(c); });
  return Uint8Array.from(out);
}

/** A path made of name bytes from the root. */
export function pathOf(parts: Uint8Array[], name?: Uint8Array): Uint8Array {
  return joinSlash(name ? [...parts, name] : parts);
}
