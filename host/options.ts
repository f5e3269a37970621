// Mount option parsing: the ext4 options we honour, validated up front.

import { Ext4Error } from "./errors.js";

export interface ParsedOptions {
  /** False by default, as a kernel mount: a needed journal replay is then written into the image. */
  readOnly: boolean;
  /** Which buffered I/O path regular files take (subject to the fallback rules). */
  bufferedIomap: boolean;
  /** Do not replay the journal (noload / norecovery). */
  noRecovery: boolean;
  data: "ordered" | "writeback" | "journal";
  errors: "continue" | "remount-ro" | "panic";
  delalloc: boolean;
  /** dioread_nolock (default) / dioread_lock: buffered writeback allocates unwritten extents and converts them at I/O completion. */
  dioreadNolock: boolean;
  commitSeconds: number;
  /** journal_checksum / nojournal_checksum; undefined: the default (on with metadata_csum). */
  journalChecksum: boolean | undefined;
  /** journal_async_commit (implies journal_checksum). */
  journalAsyncCommit: boolean;
  /** barrier (default) / nobarrier: device flushes around commit blocks and log tail updates. */
  barrier: boolean;
  /** Options accepted for compatibility that change nothing here. */
  accepted: string[];
}

const NO_EFFECT = new Set([
  "noatime", "relatime", "strictatime", "nodiratime", "lazytime", "nolazytime",
  "user_xattr", "nouser_xattr", "acl", "noacl", "discard", "nodiscard",
  "auto_da_alloc", "noauto_da_alloc", "block_validity",
  "noblock_validity", "init_itable", "noinit_itable", "i_version", "noquota", "defaults", "async",
]);

/** Parses `mountOptions`; without "ro" or readOnly the mount is read-write (journal replay written to the image), as the kernel's. */
export function parseMountOptions(text: string | undefined, readOnlyOpt: boolean | undefined): ParsedOptions {
  const o: ParsedOptions = {
    readOnly: readOnlyOpt ?? false, bufferedIomap: false, noRecovery: false, data: "ordered",
    errors: "remount-ro", delalloc: true, dioreadNolock: true, commitSeconds: 5,
    journalChecksum: undefined, journalAsyncCommit: false, barrier: true, accepted: [],
  };
  for (const raw of (text ?? "").split(",")) {
    const opt = raw.trim();
    if (!opt) continue;
    const eq = opt.indexOf("=");
    const key = eq < 0 ? opt : opt.slice(0, eq);
    const val = eq < 0 ? undefined : opt.slice(eq + 1);
    const bad = (why: string) => new Ext4Error("EINVAL", `bad mount option '${opt}': ${why}`);
    const noValue = () => { if (val !== undefined) throw bad("takes no value"); };
    switch (key) {
      case "ro": noValue(); o.readOnly = true; break;
      case "rw": noValue(); if (readOnlyOpt) throw bad("conflicts with readOnly: true"); o.readOnly = false; break;
      case "buffered_iomap": noValue(); o.bufferedIomap = true; break;
      case "nobuffered_iomap": noValue(); o.bufferedIomap = false; break;
      case "noload": case "norecovery": noValue(); o.noRecovery = true; break;
      case "delalloc": noValue(); o.delalloc = true; break;
      case "nodelalloc": noValue(); o.delalloc = false; break;
      case "dioread_nolock": noValue(); o.dioreadNolock = true; break;
      case "dioread_lock": noValue(); o.dioreadNolock = false; break;
      case "data":
        if (val !== "ordered" && val !== "writeback" && val !== "journal") throw bad("expected ordered, writeback or journal");
        o.data = val; break;
      case "errors":
        if (val !== "continue" && val !== "remount-ro" && val !== "panic") throw bad("expected continue, remount-ro or panic");
        o.errors = val; break;
      case "commit": {
        const n = Number(val ?? "5");
        if (!Number.isInteger(n) || n < 0) throw bad("expected whole seconds");
        o.commitSeconds = n === 0 ? 5 : n; break;
      }
      case "journal_checksum": noValue(); o.journalChecksum = true; break;
      case "nojournal_checksum": noValue(); o.journalChecksum = false; break;
      case "journal_async_commit": noValue(); o.journalAsyncCommit = true; o.journalChecksum = true; break;
      case "nobarrier": noValue(); o.barrier = false; break;
      case "barrier":
        if (val !== undefined && val !== "0" && val !== "1") throw bad("expected barrier, barrier=0 or barrier=1");
        o.barrier = val !== "0"; break;
      case "inode_readahead_blks": case "stripe": case "max_batch_time": case "min_batch_time": case "journal_ioprio": {
        if (val === undefined || !/^\d+$/.test(val)) throw bad("expected a number");
        o.accepted.push(opt); break;
      }
      default:
        if (NO_EFFECT.has(key) && val === undefined) { o.accepted.push(opt); break; }
        throw new Ext4Error("EINVAL", `unknown mount option '${opt}'`);
    }
  }
  // noload on a read-write mount is refused at mount, and only when the journal needs recovery (as the kernel).
  return o;
}
