// Instantiates the AssemblyScript module and gives typed access to its exports
// and memory. One instance per mounted volume: its memory holds that volume's
// folio cache, reserved whole at set-up (memory never grows afterwards, so
// views do not detach; `u8` still checks, at the cost of one comparison).

import { WASM_BASE64 } from "./binary.generated.js";

export interface Ext4Exports {
  memory: WebAssembly.Memory;
  init(cacheBudgetBytes: number, blockShift: number): number;
  scratch(): number;
  crc32c(seed: number, ptr: number, len: number): number;
  crc16(seed: number, ptr: number, len: number): number;
  bitmapFind(ptr: number, start: number, end: number, value: number): number;
  bitmapCount(ptr: number, start: number, end: number): number;
  bitmapFill(ptr: number, start: number, end: number, value: number): void;
  bitmapFindZeroRun(ptr: number, start: number, end: number, minLen: number): number;
  bitmapLongestZeroRun(ptr: number, start: number, end: number): number;
  bitmapLastRunLen(): number;
  extentCheckHeader(ptr: number, nodeBytes: number, expectDepth: number): number;
  extentSearch(ptr: number, lblk: number): number;
  zeroRange(ptr: number, len: number): void;
  isZero(ptr: number, len: number): number;
  folioLookup(mapping: number, index: number): number;
  folioCreate(mapping: number, index: number, order: number, minOrder: number): number;
  folioFirstCached(mapping: number, index: number, n: number): number;
  folioLayout(out: number): void;
  folioRemove(slot: number): void;
  folioDropIfIdle(slot: number): number;
  folioAddr(slot: number): number;
  folioIndex(slot: number): number;
  folioOrder(slot: number): number;
  folioMapping(slot: number): number;
  folioGen(slot: number): number;
  folioPin(slot: number): void;
  folioUnpin(slot: number): void;
  folioBlocks(slot: number): number;
  folioSetUptodate(slot: number, blk: number, n: number): void;
  folioClearUptodate(slot: number, blk: number, n: number): void;
  folioFindNotUptodate(slot: number, blk: number, n: number): number;
  folioFindUptodate(slot: number, blk: number, n: number): number;
  folioSetDirty(slot: number, blk: number, n: number): void;
  folioClearDirty(slot: number, blk: number, n: number): void;
  folioFindDirty(slot: number, blk: number, n: number): number;
  folioIsDirty(slot: number): number;
  folioDropMapping(mapping: number): number;
  folioPins(slot: number): number;
  folioClearDirtyForIo(slot: number): number;
  folioStartWriteback(slot: number): number;
  folioEndWriteback(slot: number, failed: number): number;
  folioSetDropbehind(slot: number): void;
  folioClearDropbehind(slot: number): void;
  folioFlags(slot: number): number;
  folioMarks(slot: number): number;
  mappingGetFolios(mapping: number, start: number, end: number, tag: number, out: number, max: number): number;
  mappingFindFolio(mapping: number, start: number, tag: number): number;
  mappingTagForWriteback(mapping: number, start: number, end: number): number;
  mappingRemoveRange(mapping: number, start: number, end: number): number;
  mappingStat(mapping: number, what: number): number;
  mappingList(list: number, after: number, out: number, max: number): number;
  mappingTreeDepth(mapping: number): number;
  cacheDirtyBytes(): number;
  cacheWritebackBytes(): number;
  cacheDirtyFolios(): number;
  cacheWritebackFolios(): number;
  cacheUsedBytes(): number;
  cacheFolios(): number;
  cacheEvictions(): number;
  cacheCapacityBytes(): number;
}

let compiled: WebAssembly.Module | undefined;

function decodeBase64(b64: string): Uint8Array {
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

export const SCRATCH_BYTES = 256 * 1024;

export class Ext4Wasm {
  readonly x: Ext4Exports;
  readonly scratchPtr: number;
  private buf: ArrayBuffer;
  private u8view: Uint8Array;

  constructor(cacheBudgetBytes: number, blockShift: number) {
    compiled ??= new WebAssembly.Module(decodeBase64(WASM_BASE64) as BufferSource);
    const instance = new WebAssembly.Instance(compiled, {
      env: {
        abort(_msg: number, _file: number, line: number, col: number) {
          throw new Error(`wasm abort at ${line}:${col}`);
        },
      },
    });
    this.x = instance.exports as unknown as Ext4Exports;
    const p = this.x.init(cacheBudgetBytes >>> 0, blockShift);
    if (p === 0) throw new RangeError("could not reserve wasm memory for the cache");
    this.scratchPtr = p;
    this.buf = this.x.memory.buffer;
    this.u8view = new Uint8Array(this.buf);
  }

  /** The whole linear memory as bytes (re-derived if memory ever grew: not after set-up). */
  get u8(): Uint8Array {
    if (this.x.memory.buffer !== this.buf) {
      this.buf = this.x.memory.buffer;
      this.u8view = new Uint8Array(this.buf);
    }
    return this.u8view;
  }

  /** A view of `len` bytes at `ptr`. */
  view(ptr: number, len: number): Uint8Array {
    return this.u8.subarray(ptr, ptr + len);
  }

  /** crc32c (raw update, no inversions) over host bytes, staged through scratch. */
  crc32c(seed: number, bytes: Uint8Array): number {
    let crc = seed >>> 0;
    const mem = this.u8;
    // Most checksums cover less than the scratch: no subarray (each is an allocation) for them.
    if (bytes.buffer === mem.buffer) return this.x.crc32c(crc, bytes.byteOffset, bytes.length) >>> 0;
    if (bytes.length <= SCRATCH_BYTES) {
      mem.set(bytes, this.scratchPtr);
      return this.x.crc32c(crc, this.scratchPtr, bytes.length) >>> 0;
    }
    for (let off = 0; off < bytes.length; off += SCRATCH_BYTES) {
      const chunk = bytes.subarray(off, Math.min(bytes.length, off + SCRATCH_BYTES));
      if (chunk.buffer === mem.buffer) {
        crc = this.x.crc32c(crc, chunk.byteOffset, chunk.length) >>> 0;
      } else {
        mem.set(chunk, this.scratchPtr);
        crc = this.x.crc32c(crc, this.scratchPtr, chunk.length) >>> 0;
      }
    }
    return crc;
  }

  crc16(seed: number, bytes: Uint8Array): number {
    const mem = this.u8;
    if (bytes.buffer === mem.buffer) return this.x.crc16(seed, bytes.byteOffset, bytes.length);
    mem.set(bytes, this.scratchPtr);
    return this.x.crc16(seed, this.scratchPtr, bytes.length);
  }
}

/** A small shared instance for checksums outside any mount (tests, tools). */
let shared: Ext4Wasm | undefined;
export function sharedWasm(): Ext4Wasm {
  shared ??= new Ext4Wasm(4 << 20, 12);
  return shared;
}

/** Checksum helpers over a memory-owned or host-owned buffer. */
export function crc32c(seed: number, bytes: Uint8Array, w: Ext4Wasm = sharedWasm()): number {
  return w.crc32c(seed, bytes);
}
