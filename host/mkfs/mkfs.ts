// mkfs(image, options): makes an ext4 filesystem as this machine's mke2fs
// makes it. A path that does not exist (or an empty file) is created sparse
// at the size asked for, and then nothing is written that it already holds.

import * as fs from "node:fs";
import type { BlockDevice } from "../device/block-device.js";
import { MemoryDevice } from "../device/memory-device.js";
import { openFileDevice } from "../device/open.js";
import { Ext4Error } from "../errors.js";
import { featureNames } from "../format/features.js";
import { uuidString } from "../format/bytes.js";
import { backupGroups, computeLayout, type Layout } from "./layout.js";
import { resolveParams, type MkfsOptions } from "./options.js";
import { writeFilesystem, type WriteStats } from "./write.js";

export type { MkfsOptions } from "./options.js";

/** What mkfs made: the numbers dumpe2fs -h shows, and what was written. */
export interface MkfsResult {
  blockSize: number;
  clusterSize: number;
  blocksCount: number;
  reservedBlocks: number;
  freeBlocks: number;
  inodesCount: number;
  freeInodes: number;
  inodeSize: number;
  inodesPerGroup: number;
  blocksPerGroup: number;
  groupCount: number;
  reservedGdtBlocks: number;
  flexBgSize: number;
  journalBlocks: number;
  /** Blocks holding the backup superblocks. */
  backups: number[];
  features: string[];
  uuid: string;
  hashSeed: string;
  /** Bytes written: metadata, and zeros over old content. */
  written: WriteStats;
}

function isBlockDevice(x: unknown): x is BlockDevice {
  return typeof x === "object" && x !== null && typeof (x as BlockDevice).write === "function" && typeof (x as BlockDevice).size === "number";
}

/** All zeros? (a MemoryDevice fresh from ofSize) — checked word by word, stops at the first set byte. */
function memoryIsZero(dev: MemoryDevice): boolean {
  const b = dev.bytes;
  const words = b.length >>> 3;
  const w = new BigUint64Array(b.buffer, b.byteOffset, words);
  for (let i = 0; i < words; i++) if (w[i] !== 0n) return false;
  for (let i = words * 8; i < b.length; i++) if (b[i]) return false;
  return true;
}

/** Opens (creating or extending as needed) the image file; `zeroed` when it holds nothing old. */
function openImage(path: string, options: MkfsOptions): { dev: BlockDevice; zeroed: boolean; created: boolean } {
  let st: fs.Stats | undefined;
  try {
    st = fs.statSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw new Ext4Error((e as NodeJS.ErrnoException).code ?? "EIO", "cannot open image", { syscall: "open", path, cause: e });
  }
  if (st && !st.isFile() && !st.isBlockDevice()) {
    throw new Ext4Error(st.isDirectory() ? "EISDIR" : "EINVAL", "image must be a regular file or a block device", { syscall: "open", path });
  }
  if (st?.isBlockDevice()) return { dev: openFileDevice(path, false), zeroed: false, created: false };
  const oldSize = st?.size ?? 0;
  // The size decides the layout; work it out before touching the file.
  const p = resolveParams(options, oldSize || undefined);
  const want = p.blocksCount * p.blockSize;
  let fd: number;
  try {
    fd = fs.openSync(path, st ? "r+" : "wx");
  } catch (e) {
    throw new Ext4Error((e as NodeJS.ErrnoException).code ?? "EIO", "cannot create image", { syscall: "open", path, cause: e });
  }
  try {
    if (oldSize < want) fs.ftruncateSync(fd, want);
  } catch (e) {
    fs.closeSync(fd);
    if (!st) fs.rmSync(path, { force: true });
    throw new Ext4Error((e as NodeJS.ErrnoException).code ?? "EIO", `cannot size the image to ${want} bytes`, { syscall: "ftruncate", path, cause: e });
  }
  fs.closeSync(fd);
  return { dev: openFileDevice(path, false), zeroed: oldSize === 0, created: !st };
}

/**
 * Makes an ext4 filesystem on `image` (a path or a BlockDevice), with
 * mke2fs's defaults for ext4 on this machine and its option meanings.
 */
export function mkfs(image: string | BlockDevice, options: MkfsOptions = {}): MkfsResult {
  let dev: BlockDevice;
  let zeroed: boolean;
  let close = false;
  let created = false;
  if (typeof image === "string") {
    ({ dev, zeroed, created } = openImage(image, options));
    close = true;
  } else if (isBlockDevice(image)) {
    dev = image;
    zeroed = image instanceof MemoryDevice && memoryIsZero(image);
  } else {
    throw new Ext4Error("EINVAL", "image must be a path or a BlockDevice", { syscall: "mkfs" });
  }
  try {
    if (dev.readOnly) throw new Ext4Error("EROFS", "the device is read-only", { syscall: "mkfs" });
    const params = resolveParams(options, dev.size);
    const layout = computeLayout(params);
    if (layout.blocksCount * layout.blockSize > dev.size) {
      throw new Ext4Error("EINVAL", `the filesystem (${layout.blocksCount * layout.blockSize} bytes) is larger than the device (${dev.size} bytes)`, { syscall: "mkfs" });
    }
    const written = writeFilesystem(dev, layout, zeroed);
    return summary(layout, written);
  } catch (e) {
    if (close) {
      dev.close();
      close = false;
      if (created && typeof image === "string") fs.rmSync(image, { force: true });
    }
    throw e;
  } finally {
    if (close) dev.close();
  }
}

function summary(l: Layout, written: WriteStats): MkfsResult {
  return {
    blockSize: l.blockSize,
    clusterSize: l.blockSize * l.clusterRatio,
    blocksCount: l.blocksCount,
    reservedBlocks: l.reservedBlocks,
    freeBlocks: l.freeBlocks,
    inodesCount: l.inodesCount,
    freeInodes: l.freeInodes,
    inodeSize: l.p.inodeSize,
    inodesPerGroup: l.inodesPerGroup,
    blocksPerGroup: l.blocksPerGroup,
    groupCount: l.groupCount,
    reservedGdtBlocks: l.reservedGdtBlocks,
    flexBgSize: l.logGroupsPerFlex ? 1 << l.logGroupsPerFlex : 0,
    journalBlocks: l.journal?.blocks ?? 0,
    backups: backupGroups(l.features, l.groupCount).map((g) => l.groups[g].first),
    features: featureNames(l.features.compat, l.features.incompat, l.features.roCompat),
    uuid: uuidString(l.p.uuid, 0),
    hashSeed: uuidString(l.p.hashSeed, 0),
    written,
  };
}
