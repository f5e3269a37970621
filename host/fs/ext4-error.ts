// ext4_error (fs/ext4/super.c: __ext4_error, ext4_handle_error,
// save_error_info): what a read-write mount does when it finds its own
// metadata inconsistent while changing it. The error is recorded in the
// superblock (s_state ERROR_FS, s_error_count, the first and last error's
// time, inode, block, function and code), then errors= decides:
//   continue    the operation fails, the volume stays writable;
//   remount-ro  the journal is aborted (nothing after the last commit reaches
//               the disk), the volume turns read-only: later writes EROFS,
//               reads go on;
//   panic       as remount-ro, and a fatal Ext4Panic is thrown instead.
// Without errors= the superblock's s_errors decides, as ext4_fill_super sets
// it (mke2fs writes "continue" unless told otherwise).
// A read-only mount never writes: there the error is only thrown.

import { Ext4Error } from "../errors.js";
import { setU16, setU32, u16, u32 } from "../format/bytes.js";
import type { Ext4 } from "./super.js";

export const EXT4_ERROR_FS = 0x2;

const S_STATE = 0x3a;
const S_ERROR_COUNT = 0x194;
const S_FIRST_ERROR_TIME = 0x198;
const S_FIRST_ERROR_INO = 0x19c;
const S_FIRST_ERROR_BLOCK = 0x1a0;
const S_FIRST_ERROR_FUNC = 0x1a8;
const S_FIRST_ERROR_LINE = 0x1c8;
const S_LAST_ERROR_TIME = 0x1cc;
const S_LAST_ERROR_INO = 0x1d0;
const S_LAST_ERROR_LINE = 0x1d4;
const S_LAST_ERROR_BLOCK = 0x1d8;
const S_LAST_ERROR_FUNC = 0x1e0;
const S_FIRST_ERROR_TIME_HI = 0x278;
const S_LAST_ERROR_TIME_HI = 0x279;
const S_FIRST_ERROR_ERRCODE = 0x27a;
const S_LAST_ERROR_ERRCODE = 0x27b;
const FUNC_LEN = 32;

/** ext4_errno_to_code: the EXT4_ERR_* code the superblock stores for an errno. */
const ERR_CODES: Record<string, number> = {
  EIO: 2, ENOMEM: 3, EFSBADCRC: 4, EFSCORRUPTED: 5, ENOSPC: 6, ENOKEY: 7, EROFS: 8, EFBIG: 9,
  EEXIST: 10, ERANGE: 11, EOVERFLOW: 12, EBUSY: 13, ENOTDIR: 14, ENOTEMPTY: 15, ESHUTDOWN: 16, EFAULT: 17,
};
const EXT4_ERR_UNKNOWN = 1;

export type ErrorBehavior = "continue" | "remount-ro" | "panic";

/** The fatal error errors=panic throws (the kernel panics the machine): the record is on disk, the volume read-only. */
export class Ext4Panic extends Ext4Error {
  readonly fatal = true;
  constructor(readonly error: Ext4Error) {
    super(error.code, `panic forced after error: ${error.message.replace(/^[A-Z]+: /, "")}`, { ino: error.ino, block: error.block, cause: error });
    this.name = "Ext4Panic";
  }
}

/**
 * errors= if given, else the superblock's s_errors where it asks for panic;
 * otherwise remount-ro. The kernel would take s_errors "continue" (what
 * mke2fs writes unless told otherwise) as it is; we stop writing instead, so
 * an image met damaged gets no second change behind the first error unless
 * the caller asks for errors=continue (see docs/design.md, errors=).
 */
export function errorBehavior(fs: Ext4): ErrorBehavior {
  const opt = fs.config.options.errors;
  if (opt) return opt;
  return fs.sb.errors === 3 ? "panic" : "remount-ro";
}

/**
 * __ext4_error + ext4_handle_error: records `err` (found in kernel function
 * `func`), acts on errors=, and throws: `err` itself, or an Ext4Panic.
 */
export function ext4Error(fs: Ext4, err: Ext4Error, func: string): never {
  if (handled.has(err)) throw err;
  handled.add(err);
  handleError(fs, err, func);
  throw err;
}

/** Errors already recorded, so an outer site that sees one pass by does not count it twice. */
const handled = new WeakSet<Error>();

/**
 * Runs a write-side operation; on-disk inconsistency it meets (EFSCORRUPTED,
 * EFSBADCRC from the checks it shares with the read path) becomes an
 * ext4Error of `func`. Other errors pass unchanged.
 */
export function onCorruption<T>(fs: Ext4, func: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof Ext4Error && (e.code === "EFSCORRUPTED" || e.code === "EFSBADCRC")) ext4Error(fs, e, func);
    throw e;
  }
}

/**
 * ext4_grp_locked_error for a damaged group the caller can step around (the
 * allocator marks the group corrupt and looks elsewhere): with
 * errors=continue it records and returns; otherwise as ext4Error.
 */
export function ext4GroupError(fs: Ext4, err: Ext4Error, func: string): void {
  handled.add(err);
  if (handleError(fs, err, func) !== "continue") throw err;
}

function handleError(fs: Ext4, err: Ext4Error, func: string): ErrorBehavior | undefined {
  if (fs.readOnly) return undefined;
  const how = errorBehavior(fs);
  fs.warnings.push(`EXT4-fs error: ${func}: ${err.message}`);
  // Aborted first, so nothing of the failing operation can be committed once the record is out.
  if (how !== "continue") fs.journal?.abort(err);
  saveErrorInfo(fs, err, func);
  try {
    fs.commitSuper();
    fs.device.flush();
  } catch (e) {
    // The record could not be written (a failing device): the error stands, the volume still stops writing.
    fs.warnings.push(`EXT4-fs: the error record could not be written: ${(e as Error).message}`);
  }
  if (how === "continue") return how;
  fs.readOnly = true;
  fs.warnings.push("EXT4-fs: Remounting filesystem read-only");
  if (how === "panic") {
    const p = new Ext4Panic(err);
    handled.add(p);
    throw p;
  }
  return how;
}

/** save_error_info / ext4_update_super's error fields, in the in-memory superblock. */
function saveErrorInfo(fs: Ext4, err: Ext4Error, func: string): void {
  const raw = fs.sb.raw;
  const now = Math.floor(Date.now() / 1000);
  const code = ERR_CODES[err.code] ?? EXT4_ERR_UNKNOWN;
  const ino = err.ino ?? 0;
  const block = err.block ?? 0;
  setU16(raw, S_STATE, u16(raw, S_STATE) | EXT4_ERROR_FS);
  fs.sb.state |= EXT4_ERROR_FS;
  // ext4_handle_error: s_mount_state too, so a clean unmount puts ERROR_FS back with the rest.
  fs.mountState |= EXT4_ERROR_FS;
  if (u32(raw, S_FIRST_ERROR_TIME) === 0 && raw[S_FIRST_ERROR_TIME_HI] === 0) {
    setTime(raw, S_FIRST_ERROR_TIME, S_FIRST_ERROR_TIME_HI, now);
    setFunc(raw, S_FIRST_ERROR_FUNC, func);
    setU32(raw, S_FIRST_ERROR_LINE, 0);
    setU32(raw, S_FIRST_ERROR_INO, ino >>> 0);
    setU64(raw, S_FIRST_ERROR_BLOCK, block);
    raw[S_FIRST_ERROR_ERRCODE] = code;
  }
  setTime(raw, S_LAST_ERROR_TIME, S_LAST_ERROR_TIME_HI, now);
  setFunc(raw, S_LAST_ERROR_FUNC, func);
  setU32(raw, S_LAST_ERROR_LINE, 0);
  setU32(raw, S_LAST_ERROR_INO, ino >>> 0);
  setU64(raw, S_LAST_ERROR_BLOCK, block);
  raw[S_LAST_ERROR_ERRCODE] = code;
  const count = (u32(raw, S_ERROR_COUNT) + 1) >>> 0;
  setU32(raw, S_ERROR_COUNT, count);
  fs.sb.errorCount = count;
}

function setTime(raw: Uint8Array, lo: number, hi: number, sec: number): void {
  setU32(raw, lo, sec >>> 0);
  raw[hi] = Math.floor(sec / 0x100000000) & 0xff;
}

function setU64(raw: Uint8Array, off: number, v: number): void {
  setU32(raw, off, v >>> 0);
  setU32(raw, off + 4, Math.floor(v / 0x100000000) >>> 0);
}

/** strncpy into a 32-byte field: NUL padded, not terminated when it fills the field. */
function setFunc(raw: Uint8Array, off: number, func: string): void {
  const b = new TextEncoder().encode(func).subarray(0, FUNC_LEN);
  raw.fill(0, off, off + FUNC_LEN);
  raw.set(b, off);
}
