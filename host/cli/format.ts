// Text shapes shared by the commands: ls-style mode strings, file type names,
// nanosecond timestamps as UTC dates, raw-byte names.

import { S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT, S_IFREG, S_IFSOCK } from "../format/inode.js";

export type FileType = "file" | "dir" | "symlink" | "fifo" | "chardev" | "blockdev" | "socket" | "unknown";

export function fileType(mode: number): FileType {
  switch (mode & S_IFMT) {
    case S_IFREG: return "file";
    case S_IFDIR: return "dir";
    case S_IFLNK: return "symlink";
    case S_IFIFO: return "fifo";
    case S_IFCHR: return "chardev";
    case S_IFBLK: return "blockdev";
    case S_IFSOCK: return "socket";
    default: return "unknown";
  }
}

/** stat(1)'s wording for a file type. */
export function fileTypeText(mode: number): string {
  const names: Record<FileType, string> = {
    file: "regular file", dir: "directory", symlink: "symbolic link", fifo: "fifo",
    chardev: "character special file", blockdev: "block special file", socket: "socket", unknown: "unknown type",
  };
  return names[fileType(mode)];
}

const TYPE_CHAR: Record<FileType, string> = {
  file: "-", dir: "d", symlink: "l", fifo: "p", chardev: "c", blockdev: "b", socket: "s", unknown: "?",
};

/** "drwxr-sr-t" as ls -l prints it: s/S for setuid/setgid, t/T for sticky. */
export function modeString(mode: number): string {
  const rwx = (bits: number, special: boolean, on: string, off: string) =>
    (bits & 4 ? "r" : "-") + (bits & 2 ? "w" : "-") + (special ? (bits & 1 ? on : off) : bits & 1 ? "x" : "-");
  return TYPE_CHAR[fileType(mode)] +
    rwx((mode >> 6) & 7, (mode & 0o4000) !== 0, "s", "S") +
    rwx((mode >> 3) & 7, (mode & 0o2000) !== 0, "s", "S") +
    rwx(mode & 7, (mode & 0o1000) !== 0, "t", "T");
}

export function octalMode(mode: number): string {
  return (mode & 0o7777).toString(8).padStart(4, "0");
}

const NS_PER_S = 1_000_000_000n;

/** Whole seconds (floored, so pre-1970 times stay ordered) and the nanoseconds past them. */
export function splitNs(ns: bigint): { sec: bigint; nsec: bigint } {
  let sec = ns / NS_PER_S;
  let nsec = ns % NS_PER_S;
  if (nsec < 0n) { sec -= 1n; nsec += NS_PER_S; }
  return { sec, nsec };
}

function utcParts(sec: bigint): string {
  // Date covers +-8.64e15 ms; ext4's 34-bit seconds are far inside that.
  const iso = new Date(Number(sec) * 1000).toISOString(); // YYYY-MM-DDTHH:MM:SS.000Z or +YYYYYY-...
  return iso.slice(0, iso.indexOf("."));
}

/** "2100-01-01T00:00:00.123456789Z": full precision, UTC. */
export function isoNs(ns: bigint): string {
  const { sec, nsec } = splitNs(ns);
  return `${utcParts(sec)}.${nsec.toString().padStart(9, "0")}Z`;
}

/** stat(1) style: "2100-01-01 00:00:00.123456789 +0000". */
export function statTime(ns: bigint): string {
  const { sec, nsec } = splitNs(ns);
  return `${utcParts(sec).replace("T", " ")}.${nsec.toString().padStart(9, "0")} +0000`;
}

/** ls -l --time-style=long-iso, in UTC: "2024-05-01 13:45". */
export function lsTime(ns: bigint): string {
  return utcParts(splitNs(ns).sec).replace("T", " ").slice(0, -3);
}

/** A superblock time (seconds, 0 = never) as an ISO date, or null. */
export function isoSeconds(sec: number): string | null {
  return sec === 0 ? null : new Date(sec * 1000).toISOString().replace(".000Z", "Z");
}

export function humanBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) { v /= 1024; u++; }
  return u === 0 ? `${n} B` : `${v.toFixed(v < 10 ? 2 : 1)} ${units[u]}`;
}

/** Major and minor of a Linux userspace dev_t (as stat(2) packs it). */
export function majorMinor(rdev: number): { major: number; minor: number } {
  return { major: ((rdev >>> 8) & 0xfff) | (Math.floor(rdev / 2 ** 32) & ~0xfff), minor: (rdev & 0xff) | ((rdev >>> 12) & 0xfff00) };
}

/** Is this byte string valid UTF-8 (so a JSON string can carry it losslessly)? */
export function isUtf8(b: Uint8Array): boolean {
  try {
    new TextDecoder("utf-8", { fatal: true }).decode(b);
    return true;
  } catch {
    return false;
  }
}

export function joinPath(dir: Buffer, name: Uint8Array): Buffer {
  const base = dir.length > 0 && dir[dir.length - 1] === 0x2f ? dir : Buffer.concat([dir, Buffer.from("/")]);
  return Buffer.concat([base, name]);
}
