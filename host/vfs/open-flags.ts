// open(2) flags as node:fs takes them: its flag strings ("r+", "wx", "as"...)
// turned into Linux's O_* bits (stringToFlags), numbers taken as they are,
// and the mode argument validated as node validates it (parseFileMode).
// The values are Linux's, whatever the host runtime's constants say.

export const O_RDONLY = 0;
export const O_WRONLY = 0o1;
export const O_RDWR = 0o2;
export const O_ACCMODE = 0o3;
export const O_CREAT = 0o100;
export const O_EXCL = 0o200;
export const O_NOCTTY = 0o400;
export const O_TRUNC = 0o1000;
export const O_APPEND = 0o2000;
export const O_NONBLOCK = 0o4000;
export const O_DSYNC = 0o10000;
export const O_DIRECT = 0o40000;
export const O_DIRECTORY = 0o200000;
export const O_NOFOLLOW = 0o400000;
export const O_NOATIME = 0o1000000;
export const O_CLOEXEC = 0o2000000;
/** __O_SYNC | O_DSYNC, as Linux defines O_SYNC. */
export const O_SYNC = 0o4010000;

const STRING_FLAGS: Record<string, number> = {
  r: O_RDONLY, rs: O_RDONLY | O_SYNC, sr: O_RDONLY | O_SYNC,
  "r+": O_RDWR, "rs+": O_RDWR | O_SYNC, "sr+": O_RDWR | O_SYNC,
  w: O_TRUNC | O_CREAT | O_WRONLY, wx: O_TRUNC | O_CREAT | O_WRONLY | O_EXCL, xw: O_TRUNC | O_CREAT | O_WRONLY | O_EXCL,
  "w+": O_TRUNC | O_CREAT | O_RDWR, "wx+": O_TRUNC | O_CREAT | O_RDWR | O_EXCL, "xw+": O_TRUNC | O_CREAT | O_RDWR | O_EXCL,
  a: O_APPEND | O_CREAT | O_WRONLY, ax: O_APPEND | O_CREAT | O_WRONLY | O_EXCL, xa: O_APPEND | O_CREAT | O_WRONLY | O_EXCL,
  as: O_APPEND | O_CREAT | O_WRONLY | O_SYNC, sa: O_APPEND | O_CREAT | O_WRONLY | O_SYNC,
  "a+": O_APPEND | O_CREAT | O_RDWR, "ax+": O_APPEND | O_CREAT | O_RDWR | O_EXCL, "xa+": O_APPEND | O_CREAT | O_RDWR | O_EXCL,
  "as+": O_APPEND | O_CREAT | O_RDWR | O_SYNC, "sa+": O_APPEND | O_CREAT | O_RDWR | O_SYNC,
};

function inspect(v: unknown): string {
  if (typeof v === "string") return `'${v}'`;
  if (typeof v === "object" && v !== null) {
    try { return JSON.stringify(v).replace(/"([^"]+)":/g, "$1: ").replace(/,/g, ", ") || String(v); } catch { return String(v); }
  }
  return String(v);
}

export function invalidArgValue(name: string, value: unknown, reason = "is invalid"): TypeError {
  return Object.assign(new TypeError(`The argument '${name}' ${reason}. Received ${inspect(value)}`), { code: "ERR_INVALID_ARG_VALUE" });
}

/** node's stringToFlags: undefined/null is "r", numbers pass as they are, unknown strings are ERR_INVALID_ARG_VALUE. */
export function parseOpenFlags(flags: unknown): number {
  if (typeof flags === "number") return flags;
  if (flags === undefined || flags === null) return O_RDONLY;
  if (typeof flags === "string" && Object.hasOwn(STRING_FLAGS, flags)) return STRING_FLAGS[flags];
  throw invalidArgValue("flags", flags);
}

/** node's parseFileMode: a 32-bit unsigned integer or an octal string; undefined gives `def`. */
export function parseFileMode(mode: unknown, name: string, def: number): number {
  if (mode === undefined || mode === null) return def;
  if (typeof mode === "string") {
    if (!/^[0-7]+$/.test(mode)) throw invalidArgValue(name, mode, "must be a 32-bit unsigned integer or an octal string");
    mode = parseInt(mode, 8);
  }
  if (typeof mode !== "number") {
    throw Object.assign(new TypeError(`The "${name}" argument must be of type number. Received ${typeof mode === "object" ? "an instance of Object" : `type ${typeof mode} (${String(mode)})`}`), { code: "ERR_INVALID_ARG_TYPE" });
  }
  if (!Number.isInteger(mode)) {
    throw Object.assign(new RangeError(`The value of "${name}" is out of range. It must be an integer. Received ${mode}`), { code: "ERR_OUT_OF_RANGE" });
  }
  if (mode < 0 || mode > 0xffffffff) {
    throw Object.assign(new RangeError(`The value of "${name}" is out of range. It must be >= 0 && <= 4294967295. Received ${mode}`), { code: "ERR_OUT_OF_RANGE" });
  }
  return mode;
}

/** What an open file may do, from its flags (the f_mode of the kernel's struct file). */
export interface FileMode {
  flags: number;
  readable: boolean;
  writable: boolean;
  append: boolean;
  /** O_SYNC: every write is followed by fsync; O_DSYNC alone: by fdatasync. */
  sync: boolean;
  dsync: boolean;
}

export function fileMode(flags: number): FileMode {
  const acc = flags & O_ACCMODE;
  return {
    flags,
    // O_ACCMODE 3 is Linux's "no read, no write" (ioctl-only) mode.
    readable: acc === O_RDONLY || acc === O_RDWR,
    writable: acc === O_WRONLY || acc === O_RDWR,
    append: (flags & O_APPEND) !== 0,
    sync: (flags & O_SYNC) === O_SYNC,
    dsync: (flags & O_DSYNC) !== 0,
  };
}

/** Whether opening with these flags needs the filesystem writable (build_open_flags' MAY_WRITE). */
export function wantsWrite(flags: number): boolean {
  const acc = flags & O_ACCMODE;
  return acc === O_WRONLY || acc === O_RDWR || (flags & O_TRUNC) !== 0;
}
