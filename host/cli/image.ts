// Mounting the image a command names, with the global options (-o, --offset).
// The CLI reads: it mounts read-only unless the options say "rw" (which lets a
// journal replay reach the image itself).

import * as fs from "node:fs";
import { describePartitions, type PartitionTable } from "../device/partitions.js";
import { mount } from "../index.js";
import type { Volume } from "../vfs/volume.js";
import { parseOffset, type ParsedArgs } from "./args.js";
import { CliError } from "./errors.js";

export interface ImageOptions {
  mountOptions: string | undefined;
  offset: number | undefined;
  /** Folio cache budget; tree walks (ls -R, get) stream and need little. */
  cacheSize?: number;
}

/**
 * Cache budget of ls, get and cat: a walk reads each block once (file data is
 * dropped behind the copy), so a small cache holds the working set (the
 * inode table and directory blocks in use, a readahead window) and keeps the
 * resident set small on any tree. The metadata caches are sized from it too
 * (see docs/design.md, "Memory of the CLI walks").
 */
export const WALK_CACHE_SIZE = 16 << 20;

export function imageOptions(args: ParsedArgs): ImageOptions {
  const o = args.flags.get("options");
  const off = args.flags.get("offset");
  return {
    mountOptions: typeof o === "string" ? o : undefined,
    offset: typeof off === "string" ? parseOffset(off) : undefined,
  };
}

export function wantsReadWrite(mountOptions: string | undefined): boolean {
  return (mountOptions ?? "").split(",").some((o) => o.trim() === "rw");
}

export function openImage(image: string, opts: ImageOptions): Volume {
  // stat first: node's own message ("ENOENT: no such file or directory, stat 'x'") is the clearest.
  const st = fs.statSync(image);
  if (st.isDirectory()) throw new CliError("EISDIR", `image is a directory, open '${image}'`);
  try {
    return mount(image, { readOnly: !wantsReadWrite(opts.mountOptions), mountOptions: opts.mountOptions, offset: opts.offset, cacheSize: opts.cacheSize });
  } catch (e) {
    // A whole disk: the library names its partitions; say it with the CLI's option name, on one line.
    const table = (e as { partitionTable?: PartitionTable }).partitionTable;
    if (table) {
      throw new CliError("EINVAL", `'${image}' is a partitioned disk (${table.scheme}), not a filesystem; ` +
        `pass --offset with the start of a partition: ${describePartitions(table).join("; ")}`);
    }
    throw e;
  }
}

/** Runs fn with the volume mounted, unmounting afterwards whatever happens. */
export function withImage<T>(image: string, opts: ImageOptions, fn: (vol: Volume) => T): T {
  const vol = openImage(image, opts);
  try {
    return fn(vol);
  } finally {
    vol.unmount();
  }
}
