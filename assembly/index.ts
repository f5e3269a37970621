// The module's exports: plain numbers and pointers only. Layout of linear memory:
//   [static data][crc tables][scratch][folio cache metadata][folio arena ...]
// The scratch area is where the host stages small buffers (superblocks,
// descriptors, names) to checksum or hash them without allocating.

import { crcInit, CRC_TABLES_BYTES, crc32cUpdate, crc16Update } from "./crc";
import { folioInit } from "./folio";

export const SCRATCH_BYTES: u32 = 256 * 1024;

let scratchBase: usize = 0;

/** Lays out memory; returns the scratch pointer, or 0 on failure. */
export function init(cacheBudgetBytes: u32, blockShift: u32): usize {
  const base = (__heap_base + 4095) & ~4095;
  crcInitAt(base);
  scratchBase = base + ((CRC_TABLES_BYTES + 4095) & ~4095);
  const arena = folioInit(scratchBase + SCRATCH_BYTES, cacheBudgetBytes, blockShift);
  if (arena == 0) return 0;
  return scratchBase;
}

function crcInitAt(base: usize): void {
  const need = <i32>(((base + CRC_TABLES_BYTES + SCRATCH_BYTES) >>> 16) + 1) - memory.size();
  if (need > 0) memory.grow(need);
  crcInit(base);
}

export function scratch(): usize { return scratchBase; }
export function crc32c(seed: u32, ptr: usize, len: usize): u32 { return crc32cUpdate(seed, ptr, len); }
export function crc16(seed: u32, ptr: usize, len: usize): u32 { return crc16Update(seed, ptr, len); }

export { bitmapFind, bitmapCount, bitmapFill, bitmapFindZeroRun, bitmapLongestZeroRun, bitmapLastRunLen } from "./bitmap";
export { extentCheckHeader, extentSearch } from "./extent";
export { zeroRange, isZero } from "./zero";
export {
  folioLookup, folioCreate, folioFirstCached, folioRemove, folioDropIfIdle, folioAddr, folioIndex, folioOrder, folioMapping, folioGen, folioLayout,
  folioPin, folioUnpin, folioBlocks, folioSetUptodate, folioClearUptodate, folioFindNotUptodate,
  folioFindUptodate, folioSetDirty, folioClearDirty, folioFindDirty, folioIsDirty, folioDropMapping,
  folioPins, folioClearDirtyForIo, folioStartWriteback, folioEndWriteback, folioSetDropbehind, folioClearDropbehind,
  folioFlags, folioMarks, mappingGetFolios, mappingFindFolio, mappingTagForWriteback, mappingRemoveRange, mappingStat,
  mappingList, mappingTreeDepth,
  cacheUsedBytes, cacheFolios, cacheEvictions, cacheCapacityBytes, cacheDirtyBytes, cacheWritebackBytes,
  cacheDirtyFolios, cacheWritebackFolios,
} from "./folio";
