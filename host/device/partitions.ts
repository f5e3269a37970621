// Partition tables (MBR and GPT) of a whole-disk image: read only to tell a
// user who gave the disk instead of a filesystem which --offset to pass.

import type { BlockDevice } from "./block-device.js";

export interface Partition {
  /** 1-based, as fdisk and the kernel number them (logical MBR partitions from 5). */
  index: number;
  /** Type name, or the raw type (0xNN, or a GUID) when unknown. */
  type: string;
  /** Byte offset of the partition's first sector. */
  start: number;
  /** Bytes. */
  size: number;
  /** GPT partition name, if any. */
  name?: string;
  /** The partition starts with an ext2/3/4 superblock. */
  ext4: boolean;
}

export interface PartitionTable {
  scheme: "MBR" | "GPT";
  sectorSize: number;
  partitions: Partition[];
}

const MBR_TYPES: Record<number, string> = {
  0x01: "FAT12", 0x04: "FAT16", 0x05: "Extended", 0x06: "FAT16", 0x07: "HPFS/NTFS/exFAT", 0x0b: "W95 FAT32",
  0x0c: "W95 FAT32 LBA", 0x0e: "W95 FAT16 LBA", 0x0f: "W95 Extended LBA", 0x82: "Linux swap", 0x83: "Linux",
  0x85: "Linux extended", 0x8e: "Linux LVM", 0xa5: "FreeBSD", 0xee: "GPT protective", 0xef: "EFI System", 0xfd: "Linux raid autodetect",
};
const EXTENDED = new Set([0x05, 0x0f, 0x85]);

const GPT_TYPES: Record<string, string> = {
  "C12A7328-F81F-11D2-BA4B-00A0C93EC93B": "EFI System",
  "21686148-6449-6E6F-744E-656564454649": "BIOS boot",
  "0FC63DAF-8483-4772-8E79-3D69D8477DE4": "Linux filesystem",
  "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F": "Linux swap",
  "E6D6D379-F507-44C2-A23C-238F2A3DF928": "Linux LVM",
  "A19D880F-05FC-4D3B-A006-743F0F84911E": "Linux RAID",
  "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709": "Linux root (x86-64)",
  "B921B045-1DF0-41C3-AF44-4C6F280D3FAE": "Linux root (ARM-64)",
  "933AC7E1-2EB4-4F13-B844-0E14E2AEF915": "Linux home",
  "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7": "Microsoft basic data",
  "E3C9E316-0B5C-4DB8-817D-F92DF00215AE": "Microsoft reserved",
};

const MAX_LOGICAL = 128;
const MAX_GPT_ENTRIES = 1024;

function read(dev: BlockDevice, pos: number, len: number): Uint8Array | undefined {
  if (!Number.isSafeInteger(pos) || pos < 0 || pos + len > dev.size) return undefined;
  const b = new Uint8Array(len);
  try {
    dev.read(pos, b);
  } catch {
    return undefined;
  }
  return b;
}

const u32 = (b: Uint8Array, o: number) => (b[o] | (b[o + 1] << 8) | (b[o + 2] << 16) | (b[o + 3] << 24)) >>> 0;
const u64 = (b: Uint8Array, o: number) => u32(b, o) + u32(b, o + 4) * 2 ** 32;

function hasExt4Magic(dev: BlockDevice, start: number): boolean {
  const m = read(dev, start + 1024 + 0x38, 2);
  return m !== undefined && m[0] === 0x53 && m[1] === 0xef;
}

/** The disk's partition table, or undefined if it has none we know. */
export function readPartitionTable(dev: BlockDevice): PartitionTable | undefined {
  const mbr = read(dev, 0, 512);
  if (!mbr || mbr[510] !== 0x55 || mbr[511] !== 0xaa) return undefined;
  const entries = [0, 1, 2, 3].map((i) => mbr.subarray(446 + i * 16, 462 + i * 16));
  if (entries.some((e) => e[4] === 0xee)) {
    // A protective MBR: the GPT header is at LBA 1, whatever the sector size.
    for (const ss of [512, 4096]) {
      const gpt = readGpt(dev, ss);
      if (gpt) return gpt;
    }
  }
  // Boot flags are 0x00 or 0x80; anything else is a boot sector, not a table.
  if (entries.some((e) => e[0] !== 0 && e[0] !== 0x80)) return undefined;
  const partitions: Partition[] = [];
  entries.forEach((e, i) => {
    const type = e[4];
    const lba = u32(e, 8);
    const sectors = u32(e, 12);
    if (type === 0 || sectors === 0) return;
    partitions.push(partition(dev, i + 1, MBR_TYPES[type] ?? hex(type), lba * 512, sectors * 512));
    if (EXTENDED.has(type)) readLogical(dev, lba, partitions);
  });
  partitions.sort((a, b) => a.index - b.index);
  return partitions.length ? { scheme: "MBR", sectorSize: 512, partitions } : undefined;
}

/** Logical partitions: a chain of EBRs, each relative to the extended partition's start. */
function readLogical(dev: BlockDevice, extStart: number, out: Partition[]): void {
  let ebrLba = extStart;
  for (let n = 0; n < MAX_LOGICAL; n++) {
    const ebr = read(dev, ebrLba * 512, 512);
    if (!ebr || ebr[510] !== 0x55 || ebr[511] !== 0xaa) return;
    const e = ebr.subarray(446, 462);
    if (e[4] !== 0 && u32(e, 12) !== 0) {
      out.push(partition(dev, 5 + n, MBR_TYPES[e[4]] ?? hex(e[4]), (ebrLba + u32(e, 8)) * 512, u32(e, 12) * 512));
    }
    const next = ebr.subarray(462, 478);
    if (next[4] === 0 || u32(next, 8) === 0) return;
    ebrLba = extStart + u32(next, 8);
  }
}

function readGpt(dev: BlockDevice, ss: number): PartitionTable | undefined {
  const h = read(dev, ss, 92);
  if (!h || new TextDecoder().decode(h.subarray(0, 8)) !== "EFI PART") return undefined;
  const headerSize = u32(h, 12);
  if (headerSize < 92 || headerSize > ss) return undefined;
  const full = read(dev, ss, headerSize)!;
  const want = u32(full, 16);
  full.fill(0, 16, 20);
  if (crc32(full) !== want) return undefined;
  const entriesLba = u64(h, 72);
  // As the kernel's is_gpt_valid: 128-byte entries only, and the array's own crc
  // must match (so a damaged header cannot make us read gigabytes).
  const count = u32(h, 80);
  const entrySize = u32(h, 84);
  if (entrySize !== 128 || count > MAX_GPT_ENTRIES) return undefined;
  const table = read(dev, entriesLba * ss, count * entrySize);
  if (!table || crc32(table) !== u32(h, 88)) return undefined;
  const partitions: Partition[] = [];
  for (let i = 0; i < count; i++) {
    const e = table.subarray(i * entrySize, (i + 1) * entrySize);
    if (e.subarray(0, 16).every((x) => x === 0)) continue;
    const guid = guidText(e.subarray(0, 16));
    const first = u64(e, 32);
    const last = u64(e, 40);
    if (last < first) continue;
    const name = new TextDecoder("utf-16le").decode(e.subarray(56, 128)).replace(/\0[\s\S]*$/, "");
    const p = partition(dev, i + 1, GPT_TYPES[guid] ?? guid, first * ss, (last - first + 1) * ss);
    if (name) p.name = name;
    partitions.push(p);
  }
  return { scheme: "GPT", sectorSize: ss, partitions };
}

function partition(dev: BlockDevice, index: number, type: string, start: number, size: number): Partition {
  return { index, type, start, size, ext4: hasExt4Magic(dev, start) };
}

const hex = (t: number) => `0x${t.toString(16).padStart(2, "0")}`;

/** A GPT GUID as text: the first three fields are little-endian. */
function guidText(b: Uint8Array): string {
  const h = (from: number, to: number, rev: boolean) => {
    const s = Array.from(b.subarray(from, to));
    return (rev ? s.reverse() : s).map((x) => x.toString(16).padStart(2, "0")).join("");
  };
  return `${h(0, 4, true)}-${h(4, 6, true)}-${h(6, 8, true)}-${h(8, 10, false)}-${h(10, 16, false)}`.toUpperCase();
}

let crcTable: Uint32Array | undefined;
/** CRC-32 (IEEE, reflected), as the GPT header carries it. */
function crc32(b: Uint8Array): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let i = 0; i < 256; i++) {
      let c = i;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[i] = c >>> 0;
    }
  }
  let c = 0xffffffff;
  for (let i = 0; i < b.length; i++) c = crcTable[(c ^ b[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** One phrase per partition, for an error that tells the user which --offset to pass. */
export function describePartitions(t: PartitionTable): string[] {
  return t.partitions.map((p) => {
    const sectors = p.start % 512 === 0 ? ` (${p.start / 512}s)` : "";
    const label = p.name ? ` "${p.name}"` : "";
    return `partition ${p.index} (${p.type}${label}) at offset ${p.start}${sectors}, ${p.size} bytes${p.ext4 ? ", ext2/3/4" : ""}`;
  });
}

/**
 * The partition table of a whole disk given where a filesystem was expected:
 * a table and no superblock at byte 1024 (a filesystem that merely keeps a
 * stale MBR signature still mounts). Undefined otherwise.
 */
export function wholeDiskTable(dev: BlockDevice): PartitionTable | undefined {
  if (hasExt4Magic(dev, 0)) return undefined;
  return readPartitionTable(dev);
}
