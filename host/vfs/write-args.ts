// node:fs's argument handling for the write calls, so a volume takes what
// node takes and refuses the rest with node's own TypeError / RangeError
// (getValidatedFd, validateOffsetLengthWrite, toUnixTimestamp, ...).

import { Buffer } from "node:buffer";
import type { Timespec } from "../format/inode.js";
import type { TimeArg } from "./file-write.js";

function describe(v: unknown): string {
  if (v === null) return "null";
  if (v === undefined) return "undefined";
  if (typeof v === "function") return `function ${(v as { name?: string }).name || ""}`.trim();
  if (typeof v === "object") return v.constructor?.name ? `an instance of ${v.constructor.name}` : "an instance of Object";
  const s = typeof v === "string" ? `'${v.length > 25 ? `${v.slice(0, 25)}...` : v}'` : String(v);
  return `type ${typeof v} (${s})`;
}

export function argType(name: string, expected: string, got: unknown): TypeError {
  const what = name.includes(".") || name.includes(" ") ? `The ${name}` : `The "${name}" argument`;
  return Object.assign(new TypeError(`${what} must be ${expected}. Received ${describe(got)}`), { code: "ERR_INVALID_ARG_TYPE" });
}

export function outOfRange(name: string, range: string, got: unknown): RangeError {
  return Object.assign(new RangeError(`The value of "${name}" is out of range. It must be ${range}. Received ${typeof got === "number" ? addSep(got) : String(got)}`), { code: "ERR_OUT_OF_RANGE" });
}

/** node prints big integers with "_" between thousands in range errors. */
function addSep(n: number): string {
  if (!Number.isInteger(n) || Math.abs(n) < 1000) return String(n);
  const s = String(Math.abs(n));
  let out = "";
  for (let i = s.length; i > 0; i -= 3) out = (i - 3 > 0 ? "_" : "") + s.slice(Math.max(0, i - 3), i) + out;
  return (n < 0 ? "-" : "") + out;
}

export function validateInt32(v: unknown, name: string, min = -2147483648, max = 2147483647): number {
  if (typeof v !== "number") throw argType(name, "of type number", v);
  if (!Number.isInteger(v)) throw outOfRange(name, "an integer", v);
  if (v < min || v > max) throw outOfRange(name, `>= ${min} && <= ${max}`, v);
  return v;
}

/** getValidatedFd. */
export function validFd(fd: unknown): number {
  return validateInt32(fd, "fd", 0);
}

export function isBufferView(v: unknown): v is ArrayBufferView {
  return ArrayBuffer.isView(v);
}

/** An ArrayBufferView's bytes as a Uint8Array over the same memory. */
export function bytesOf(v: ArrayBufferView): Uint8Array {
  return v instanceof Uint8Array ? v : new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
}

export function validateStringAfterView(v: unknown, name: string): asserts v is string {
  if (typeof v !== "string") throw argType(name, "of type string or an instance of Buffer, TypedArray, or DataView", v);
}

/** validateOffsetLengthWrite. */
export function validateOffsetLengthWrite(offset: number, length: number, byteLength: number): void {
  if (offset > byteLength) throw outOfRange("offset", `<= ${byteLength}`, offset);
  if (length > byteLength - offset) throw outOfRange("length", `<= ${byteLength - offset}`, length);
  if (length < 0) throw outOfRange("length", ">= 0", length);
  validateInt32(length, "length", 0);
}

export function validateEncoding(enc: unknown): BufferEncoding {
  if (enc === undefined || enc === null) return "utf8";
  if (typeof enc !== "string" || !Buffer.isEncoding(enc)) {
    throw Object.assign(new TypeError(`The argument 'encoding' is invalid encoding. Received ${typeof enc === "string" ? `'${enc}'` : String(enc)}`), { code: "ERR_INVALID_ARG_VALUE" });
  }
  return enc as BufferEncoding;
}

/**
 * writeSync's arguments in either form, as node reads them: (buffer,
 * offset?, length?, position?), (buffer, { offset, length, position }) or
 * (string, position?, encoding?). Returns the bytes and the position
 * (null: the file's own).
 */
export function writeArgs(buffer: unknown, offsetOrOptions: unknown, length: unknown, position: unknown): { data: Uint8Array; position: number | null } {
  if (isBufferView(buffer)) {
    let offset = offsetOrOptions;
    if (typeof offset === "object" && offset !== null) {
      const o = offset as { offset?: unknown; length?: unknown; position?: unknown };
      offset = o.offset ?? 0;
      length = o.length ?? buffer.byteLength - (offset as number);
      position = o.position ?? null;
    }
    if (typeof offset !== "number") offset = 0;
    if (typeof length !== "number") length = buffer.byteLength - (offset as number);
    const pos = typeof position === "number" ? position : typeof position === "bigint" ? Number(position) : null;
    validateOffsetLengthWrite(offset as number, length as number, buffer.byteLength);
    const bytes = bytesOf(buffer);
    return { data: bytes.subarray(offset as number, (offset as number) + (length as number)), position: pos === -1 ? null : pos };
  }
  validateStringAfterView(buffer, "buffer");
  const enc = validateEncoding(length);
  const pos = typeof offsetOrOptions === "number" ? offsetOrOptions : null;
  return { data: Buffer.from(buffer, enc), position: pos === -1 ? null : pos };
}

/** validateBufferArray. */
export function bufferArray(buffers: unknown): Uint8Array[] {
  if (!Array.isArray(buffers)) throw argType("buffers", "an ArrayBufferView[]", buffers);
  return buffers.map((b, i) => {
    if (!isBufferView(b)) throw argType(`buffers[${i}]`, "an instance of ArrayBufferView", b);
    return bytesOf(b);
  });
}

/** writeFileSync's data: bytes as they are, a string in the encoding. */
export function fileData(data: unknown, encoding: BufferEncoding | undefined): Uint8Array {
  if (isBufferView(data)) return bytesOf(data);
  validateStringAfterView(data, "data");
  return Buffer.from(data, encoding ?? "utf8");
}

/** getOptions for writeFile / appendFile / createWriteStream: a string is the encoding. */
export function options<T extends object>(opts: unknown, defaults: T): T {
  if (opts === undefined || opts === null || typeof opts === "function") return { ...defaults };
  if (typeof opts === "string") return { ...defaults, encoding: opts };
  if (typeof opts !== "object") throw argType("options", "one of type string or an instance of Object", opts);
  return { ...defaults, ...(opts as object) };
}

/**
 * toUnixTimestamp then libuv's uv__fs_to_timespec (microseconds kept). Our
 * one extension: a bigint is nanoseconds since the epoch, taken exactly (node
 * refuses bigints here, so no node call changes meaning).
 */
export function timeArg(time: unknown, name: string): TimeArg {
  if (typeof time === "bigint") {
    let sec = time / 1_000_000_000n;
    let nsec = time % 1_000_000_000n;
    if (nsec < 0n) { nsec += 1_000_000_000n; sec -= 1n; }
    return { sec: Number(sec), nsec: Number(nsec) } satisfies Timespec;
  }
  let secs: number;
  if (typeof time === "string" && +time == (time as unknown as number)) secs = +time;
  else if (typeof time === "number" && Number.isFinite(time)) secs = time < 0 ? Date.now() / 1000 : time;
  else if (time instanceof Date) secs = time.getTime() / 1000;
  else throw argType(name, "an instance of Date or an Time in seconds", time);
  if (secs === Infinity || secs === -Infinity) return "now";
  if (Number.isNaN(secs)) return "omit";
  let sec = Math.trunc(secs);
  let nsec = Math.trunc((secs - sec) * 1e9);
  nsec -= nsec % 1000;
  if (nsec < 0) { nsec += 1e9; sec -= 1; }
  return { sec, nsec } satisfies Timespec;
}

/** validateInteger(uid/gid, name, -1, kMaxUserId). */
export function idArg(v: unknown, name: string): number {
  if (typeof v !== "number") throw argType(name, "of type number", v);
  if (!Number.isInteger(v)) throw outOfRange(name, "an integer", v);
  if (v < -1 || v > 4294967295) throw outOfRange(name, ">= -1 && <= 4294967295", v);
  return v;
}

/** A length or offset argument (ftruncate's len, truncate's len): integers, default 0. */
export function lengthArg(v: unknown, name = "len"): number {
  if (v === undefined || v === null) return 0;
  if (typeof v === "bigint") v = Number(v);
  if (typeof v !== "number") throw argType(name, "of type number", v);
  if (!Number.isInteger(v)) throw outOfRange(name, "an integer", v);
  if (v < -9007199254740991 || v > 9007199254740991) throw outOfRange(name, ">= -9007199254740991 && <= 9007199254740991", v);
  return Math.max(0, v);
}
