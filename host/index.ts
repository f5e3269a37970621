// ext4wasm: mount ext4 images from JavaScript and read them through a
// node:fs-compatible API.

import type { BlockDevice } from "./device/block-device.js";
import { OffsetDevice } from "./device/block-device.js";
import { MemoryDevice } from "./device/memory-device.js";
import { openFileDevice } from "./device/open.js";
import { describePartitions, wholeDiskTable, type PartitionTable } from "./device/partitions.js";
import { Ext4Error } from "./errors.js";
import { Ext4 } from "./fs/super.js";
import { parseMountOptions } from "./options.js";
import type { ImageSource, MountOptions } from "./vfs/types.js";
import { Volume } from "./vfs/volume.js";

export { Ext4Error } from "./errors.js";
export { Ext4Panic } from "./fs/ext4-error.js";
export type { BlockDevice } from "./device/block-device.js";
export { MemoryDevice } from "./device/memory-device.js";
export { NodeFileDevice } from "./device/node-file-device.js";
export { DenoFileDevice } from "./device/deno-file-device.js";
export { OffsetDevice } from "./device/block-device.js";
export { RecordingDevice, type DeviceEvent } from "./device/recording-device.js";
export { Volume } from "./vfs/volume.js";
export { Stats, BigIntStats } from "./vfs/stats.js";
export type { MountOptions, ImageSource, Dirent } from "./vfs/types.js";
export type { Dir } from "./vfs/opendir.js";
export type { VolumeReadStream, ReadStreamOptions } from "./vfs/read-stream.js";
export type { Callback } from "./vfs/volume.js";
export type { PathLike } from "./vfs/path-walk.js";

function isBlockDevice(x: unknown): x is BlockDevice {
  return typeof x === "object" && x !== null && typeof (x as BlockDevice).read === "function" && typeof (x as BlockDevice).size === "number";
}

/**
 * Mounts an ext4 filesystem from a file path, bytes in memory, or a BlockDevice.
 *
 * Read-write by default, as the kernel mounts: if the journal needs recovery,
 * the replay is written into the image (file, bytes or device) and the journal
 * marked clean. To inspect an image without changing a byte, pass
 * `{ readOnly: true }`: the replay then goes to an in-memory overlay.
 */
export function mount(image: ImageSource, opts: MountOptions = {}): Volume {
  const options = parseMountOptions(opts.mountOptions, opts.readOnly);
  let device: BlockDevice;
  if (typeof image === "string") device = openFileDevice(image, options.readOnly);
  else if (image instanceof Uint8Array) device = new MemoryDevice(image, { readOnly: options.readOnly });
  else if (isBlockDevice(image)) device = image;
  else throw new Ext4Error("EINVAL", "image must be a path, a Uint8Array or a BlockDevice");
  try {
    if (opts.offset !== undefined && opts.offset !== 0) device = new OffsetDevice(device, opts.offset);
    const fs = Ext4.mount(device, { options, cacheSize: opts.cacheSize, ignoreChecksums: opts.ignoreChecksums });
    return new Volume(fs);
  } catch (e) {
    const table = !opts.offset ? partitionTableOf(device) : undefined;
    if (typeof image === "string") device.close();
    if (table) throw partitionedDisk(table, e);
    if (e instanceof RangeError || e instanceof TypeError) {
      throw new Ext4Error("EFSCORRUPTED", `inconsistent metadata: ${e.message}`, { syscall: "mount", cause: e });
    }
    throw e;
  }
}

function partitionTableOf(device: BlockDevice): PartitionTable | undefined {
  try {
    return wholeDiskTable(device);
  } catch {
    return undefined; // the mount's own error says what is wrong
  }
}

/** A whole disk given instead of a filesystem: the error names each partition's offset. */
function partitionedDisk(table: PartitionTable, cause: unknown): Ext4Error {
  const e = new Ext4Error("EINVAL", `the image is a partitioned disk (${table.scheme}), not a filesystem; ` +
    `mount a partition by passing its start as the offset option: ${describePartitions(table).join("; ")}`, { syscall: "mount", cause });
  (e as Ext4Error & { partitionTable?: PartitionTable }).partitionTable = table;
  return e;
}
export { mkfs } from "./mkfs/mkfs.js";
export type { MkfsOptions, MkfsResult } from "./mkfs/mkfs.js";
