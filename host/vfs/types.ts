// Public shapes of the volume API, modelled on node:fs.

import type { BlockDevice } from "../device/block-device.js";

export interface MountOptions {
  /** Comma-separated ext4 mount options: "ro", "buffered_iomap", "nobuffered_iomap", "noload", "norecovery", "errors=..." ... */
  mountOptions?: string;
  /**
   * Never write the image: a journal that needs recovery is replayed into an
   * in-memory overlay. Default false: like the kernel, mount() opens read-write
   * and writes the replay into the image. Pass true to inspect an image.
   */
  readOnly?: boolean;
  /** Byte offset of the filesystem inside the image (a partition of a disk image). */
  offset?: number;
  /** Folio cache budget in bytes (default 256 MiB). */
  cacheSize?: number;
  /** Skip checksum verification (forensics on damaged images). Default false. */
  ignoreChecksums?: boolean;
}

export type ImageSource = string | Uint8Array | BlockDevice;

export interface Dirent {
  /** The name: a string, or a Buffer when readdir was given encoding "buffer". */
  name: string | Uint8Array;
  /** Raw name bytes (ext4 names are bytes, not necessarily UTF-8). */
  rawName: Uint8Array;
  /** Parent directory path, as node's Dirent.parentPath. */
  parentPath: string;
  ino: number;
  isFile(): boolean;
  isDirectory(): boolean;
  isSymbolicLink(): boolean;
  isBlockDevice(): boolean;
  isCharacterDevice(): boolean;
  isFIFO(): boolean;
  isSocket(): boolean;
}
