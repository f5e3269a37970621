// A truncated image (the device shorter than the superblock's block count):
// `info` warns; a read-only mount reads what is there; a block past the end
// is EIO naming the block and the device size, data and metadata alike; a
// read-write mount is refused.

import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Ext4Error, mount } from "../host/index.js";
import { BIN, ensureBuilt } from "./cli-helpers.js";
import { runSync } from "./helpers/exec.js";

let work: string;
let full: string;
let cut: string;
let cutBytes: number;
let zdirBlock: number;
let f3Block: number;
let cutBlock: number;
const files = new Map<string, Buffer>();

/** First block of a path, as debugfs says. */
const firstBlock = (img: string, p: string) => Number(runSync("debugfs", ["-R", `blocks ${p}`, img]).stdout.trim().split(/\s+/)[0]);

beforeAll(() => {
  ensureBuilt();
  work = fs.mkdtempSync(path.join(os.tmpdir(), "ext4wasm-truncated-"));
  const tree = path.join(work, "tree");
  for (const d of ["adir", "zdir"]) fs.mkdirSync(path.join(tree, d), { recursive: true });
  let seed = 7;
  const bytes = (n: number) => Buffer.from(Array.from({ length: n }, () => (seed = (seed * 1103515245 + 12345) >>> 0) >>> 24));
  files.set("a", Buffer.from("small\n"));
  for (let i = 1; i <= 3; i++) {
    files.set(`adir/f${i}`, bytes(200_000));
    files.set(`zdir/g${i}`, bytes(200_000));
  }
  for (const [p, b] of files) fs.writeFileSync(path.join(tree, p), b);
  full = path.join(work, "full.img");
  runSync("mkfs.ext4", ["-q", "-F", "-b", "1024", "-d", tree, full, "32M"]);
  // mkfs -d lays the tree out in order: cut the image 100 blocks into /adir/f3,
  // so f3 is partly there and /zdir (its directory block and files) not at all.
  zdirBlock = firstBlock(full, "/zdir");
  f3Block = firstBlock(full, "/adir/f3");
  expect(firstBlock(full, "/adir/f2")).toBeLessThan(f3Block);
  expect(zdirBlock).toBeGreaterThan(f3Block + 100);
  cutBlock = f3Block + 100;
  cutBytes = cutBlock * 1024;
  cut = path.join(work, "cut.img");
  fs.copyFileSync(full, cut);
  fs.truncateSync(cut, cutBytes);
});
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

function thrown(fn: () => unknown): Ext4Error {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(Ext4Error);
    return e as Ext4Error;
  }
  throw new Error("expected an error");
}

describe("a truncated image", () => {
  it("`info` warns that the device is shorter than the filesystem (text and --json); a whole image has no warning", () => {
    const r = spawnSync(process.execPath, [BIN, "info", cut], { encoding: "utf8" });
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^Warning: +device is ${cutBytes} bytes, shorter than the filesystem \\(32768 blocks of 1024, 33554432 bytes\\): the image is truncated; blocks from ${cutBlock} on cannot be read$`, "m"));
    const j = JSON.parse(spawnSync(process.execPath, [BIN, "info", "--json", cut], { encoding: "utf8" }).stdout);
    expect(j.deviceBytes).toBe(cutBytes);
    expect(j.warnings).toHaveLength(1);
    const whole = JSON.parse(spawnSync(process.execPath, [BIN, "info", "--json", full], { encoding: "utf8" }).stdout);
    expect(whole.warnings).toEqual([]);
  });

  it("reads what is there; a data block past the end is EIO naming the block and the device size; the rest stays readable", () => {
    for (const mountOptions of ["buffered_iomap", "nobuffered_iomap"]) {
      const vol = mount(cut, { readOnly: true, mountOptions });
      try {
        expect(Buffer.from(vol.readFileSync("/a")).equals(files.get("a")!)).toBe(true);
        // The part of f3 before the cut reads whole (its readahead past the end fails quietly).
        const fd = vol.openSync("/adir/f3", "r");
        const head = Buffer.alloc(50 * 1024);
        expect(vol.readSync(fd, head, 0, head.length, 0)).toBe(head.length);
        expect(head.equals(files.get("adir/f3")!.subarray(0, head.length))).toBe(true);
        vol.closeSync(fd);
        // All of f3: the first missing block is named.
        const e = thrown(() => vol.readFileSync("/adir/f3"));
        expect(e.code).toBe("EIO");
        expect(e.block).toBe(cutBlock);
        expect(e.message).toContain(`block ${cutBlock} is past the end of the device (${cutBytes} bytes, ${cutBlock} blocks): the image is truncated`);
        expect(vol.statSync("/adir/f3").size).toBe(200_000); // its inode is in a table that is still there
        // Other files read whole after the failure.
        for (const p of ["adir/f1", "adir/f2"]) expect(Buffer.from(vol.readFileSync("/" + p)).equals(files.get(p)!), p).toBe(true);
      } finally {
        vol.unmount();
      }
    }
  });

  it("a directory block past the end is EIO naming the block; its parent still lists", () => {
    const vol = mount(cut, { readOnly: true });
    try {
      expect(vol.readdirSync("/").sort()).toEqual(["a", "adir", "lost+found", "zdir"]);
      const e = thrown(() => vol.readdirSync("/zdir"));
      expect(e.code).toBe("EIO");
      expect(e.block).toBe(zdirBlock);
      expect(e.message).toContain(`block ${zdirBlock} is past the end of the device (${cutBytes} bytes, ${cutBlock} blocks)`);
      expect(vol.readdirSync("/adir").sort()).toEqual(["f1", "f2", "f3"]);
    } finally {
      vol.unmount();
    }
  });

  it("a read-write mount is refused with EINVAL", () => {
    expect(thrown(() => mount(cut)).code).toBe("EINVAL");
  });
});
