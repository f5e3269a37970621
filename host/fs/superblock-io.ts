// Reading the primary superblock from a device.

import { readDevice } from "../cache/buffer-cache.js";
import type { BlockDevice } from "../device/block-device.js";
import { Ext4Error } from "../errors.js";
import { decodeSuperblock, Superblock, SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE } from "../format/superblock.js";

export function readSuperblock(device: BlockDevice): Superblock {
  if (device.size < SUPERBLOCK_OFFSET + SUPERBLOCK_SIZE) {
    throw new Ext4Error("EINVAL", `device too small for an ext4 filesystem (${device.size} bytes)`);
  }
  const b = new Uint8Array(SUPERBLOCK_SIZE);
  readDevice(device, SUPERBLOCK_OFFSET, b);
  return decodeSuperblock(b);
}

