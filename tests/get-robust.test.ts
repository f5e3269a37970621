// get on images that are corrupt in ways that could make it run forever or
// leave the process changed: hard links to directories (loops, repeats), and
// a failure that escapes the walk (the cwd, moved for long paths, comes back).

import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TreeCopier } from "../host/cli/get/copy-tree.js";
import { Progress } from "../host/cli/get/progress.js";
import { treeSize } from "../host/cli/get/tree-size.js";
import { mount } from "../host/index.js";
import { allocStats } from "../host/fs/mballoc.js";
import type { Ext4 } from "../host/fs/super.js";
import type { Volume } from "../host/vfs/volume.js";
import { sh, writePatternedFile } from "./cli-helpers.js";

let work: string;
let loopImg: string; // a/b/f, and /a/b/loop a hard link to /a
let twiceImg: string; // a/f, c/, and /c/again a hard link to /a

beforeAll(() => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), "ext4wasm-get-robust-"));
  const src = path.join(work, "src");
  fs.mkdirSync(path.join(src, "a", "b"), { recursive: true });
  fs.writeFileSync(path.join(src, "a", "b", "f"), "f\n");
  fs.mkdirSync(path.join(src, "c"));
  loopImg = path.join(work, "loop.img");
  sh("mkfs.ext4", ["-q", "-F", "-b", "4096", "-d", src, loopImg, "8M"]);
  twiceImg = path.join(work, "twice.img");
  fs.copyFileSync(loopImg, twiceImg);
  sh("debugfs", ["-w", "-R", "link /a /a/b/loop", loopImg]);
  sh("debugfs", ["-w", "-R", "link /a /c/again", twiceImg]);
});

afterAll(() => {
  // GNU rm removes trees deeper than PATH_MAX (fs.rmSync cannot).
  if (work) spawnSync("rm", ["-rf", work]);
});

/**
 * The volume, but listing at most `limit` directories: after that a listing
 * fails (a failure the walk records and goes past), so a walk that would loop
 * forever ends and the test can see it, instead of hanging.
 */
function bounded(vol: Volume, limit: number): Volume {
  let listings = 0;
  const v = Object.create(vol) as Volume;
  v.readdirInode = (...args: Parameters<Volume["readdirInode"]>) => {
    if (++listings > limit) throw Object.assign(new Error("listing limit"), { code: "ELIMIT" });
    return vol.readdirInode(...args);
  };
  return v;
}

function copy(vol: Volume, dst: string) {
  return new TreeCopier(vol, { force: false, stagingParent: work, progress: new Progress(true) }).run(Buffer.from("/"), Buffer.from(dst));
}

describe("a hard link from a directory to its ancestor (a loop)", () => {
  it("get copies the tree once and reports the loop by its image path", () => {
    const vol = mount(loopImg, { readOnly: true });
    try {
      const out = path.join(work, "loop-out");
      const r = copy(bounded(vol, 100), out);
      expect(r.failures.map((f) => f.code)).toEqual(["EFSCORRUPTED"]);
      expect(r.failures[0].path).toBe("/a/b/loop");
      expect(r.failures[0].message).toMatch(/directory loop: \/a\/b\/loop is its own ancestor/);
      expect(fs.readFileSync(path.join(out, "a", "b", "f"), "utf8")).toBe("f\n");
      expect(fs.existsSync(path.join(out, "a", "b", "loop"))).toBe(false);
      expect(r.entries).toBe(7); // / lost+found a b f loop c
    } finally {
      vol.unmount();
    }
  });

  it("the progress total counts each directory once", () => {
    const vol = mount(loopImg, { readOnly: true });
    try {
      expect(treeSize(bounded(vol, 100), vol.inodeOf("/a"))).toBe(4); // a b f loop
    } finally {
      vol.unmount();
    }
  });

  it("the CLI ends, reports it and exits 1", async () => {
    const { ensureBuilt, BIN } = await import("./cli-helpers.js");
    ensureBuilt();
    const r = spawnSync(process.execPath, [BIN, "get", loopImg, "/a", path.join(work, "loop-cli")], { encoding: "utf8", timeout: 60_000 });
    expect(r.signal).toBe(null);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("ext4wasm: cannot copy '/a/b/loop': EFSCORRUPTED: directory loop");
  }, 90_000);
});

describe("a second hard link to a directory elsewhere", () => {
  it("is copied once, through its first name; the second name is a failure", () => {
    const vol = mount(twiceImg, { readOnly: true });
    try {
      const out = path.join(work, "twice-out");
      const r = copy(bounded(vol, 100), out);
      expect(r.failures.map((f) => [f.path, f.code])).toEqual([["/c/again", "EFSCORRUPTED"]]);
      expect(r.failures[0].message).toMatch(/already copied under another name/);
      expect(fs.readFileSync(path.join(out, "a", "b", "f"), "utf8")).toBe("f\n");
      expect(fs.existsSync(path.join(out, "c", "again"))).toBe(false);
    } finally {
      vol.unmount();
    }
  });
});

describe("a failure that escapes the walk", () => {
  it("leaves the process's working directory where it was", () => {
    const vol = mount(loopImg, { readOnly: true });
    const before = process.cwd();
    try {
      // A destination deeper than PATH_MAX makes HostPaths chdir; the top entry then fails (it exists, no --force).
      let deep = path.join(work, "deep");
      const seg = "d".repeat(200);
      for (let i = 0; i < 25; i++) deep = path.join(deep, seg);
      const parent = Buffer.from(deep);
      mkdirDeep(parent);
      const dst = Buffer.concat([parent, Buffer.from("/top")]);
      const v = Object.create(vol) as Volume;
      v.inodeOf = () => vol.inodeOf("/a/b/f");
      const c = new TreeCopier(v, { force: false, stagingParent: work, progress: new Progress(true) });
      c.run(Buffer.from("/a/b/f"), dst); // copies the file through a chdir
      expect(process.cwd()).toBe(before);
      expect(() => new TreeCopier(v, { force: false, stagingParent: work, progress: new Progress(true) }).run(Buffer.from("/a/b/f"), dst)).toThrow(/EEXIST/);
      expect(process.cwd()).toBe(before);
    } finally {
      process.chdir(before);
      vol.unmount();
    }
  });
});

/** mkdir -p for a path longer than PATH_MAX: by steps, from a cwd that is put back. */
function mkdirDeep(p: Buffer): void {
  const start = process.cwd();
  try {
    process.chdir("/");
    for (const part of p.toString("utf8").split("/").filter(Boolean)) {
      fs.mkdirSync(part, { recursive: true });
      process.chdir(part);
    }
  } finally {
    process.chdir(start);
  }
}

// The CLI reaches the engine only through the vfs: get's drop-behind reads
// and its progress total go through Volume methods, not the caches below.
describe("the volume's methods for get and cat", () => {
  it("openInode(..., { dropBehind: true }) reads a file once without keeping it cached", () => {
    const src = path.join(work, "big-src");
    fs.mkdirSync(src);
    const chunk = writePatternedFile(path.join(src, "big"), 40);
    const img = path.join(work, "big.img");
    sh("mkfs.ext4", ["-q", "-F", "-b", "4096", "-d", src, img, "64M"]);
    const vol = mount(img, { readOnly: true, cacheSize: 128 << 20 });
    try {
      const inode = vol.inodeOf("/big");
      const readAll = (fd: number) => {
        const buf = Buffer.alloc(1 << 20);
        let peak = 0;
        let total = 0;
        for (let n; (n = vol.readSync(fd, buf, 0, buf.length, null)) > 0;) {
          total += n;
          peak = Math.max(peak, vol.fs.cache.stats().usedBytes);
        }
        vol.closeSync(fd);
        return { peak, total, last: buf };
      };
      const dropped = readAll(vol.openInode(inode, "/big", { dropBehind: true }));
      expect(dropped.total).toBe(40 << 20);
      expect(dropped.last.equals(chunk)).toBe(true);
      expect(dropped.peak).toBeLessThan(8 << 20);
      vol.dropCaches();
      const kept = readAll(vol.openInode(inode, "/big")); // the default keeps what it read
      expect(kept.peak).toBeGreaterThan(32 << 20);
    } finally {
      vol.unmount();
    }
  });

  it("statfsSync() gives the free counts e2fsprogs reads from the image (blocks and bavail as the kernel's, less the metadata overhead)", () => {
    const vol = mount(loopImg, { readOnly: true });
    try {
      const st = vol.statfsSync();
      const dump = sh("dumpe2fs", ["-h", loopImg]);
      const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+)`, "m").exec(dump)![1]);
      // ext4_statfs: f_blocks is the block count less the metadata overhead, f_bavail free less the
      // root reserve and the reserved clusters (s_resv_clusters); tests/vfs-write.test.ts compares all with the kernel.
      const resv = allocStats((vol as unknown as { fs: Ext4 }).fs).resvClusters;
      const overhead = field("Block count") - st.blocks;
      expect(overhead).toBeGreaterThan(0);
      expect(st).toEqual({
        type: 0xef53, bsize: field("Block size"), blocks: field("Block count") - overhead, bfree: field("Free blocks"),
        bavail: Math.max(0, field("Free blocks") - field("Reserved block count") - resv), files: field("Inode count"), ffree: field("Free inodes"),
      });
    } finally {
      vol.unmount();
    }
  });

  it("get and cat import nothing below the vfs (only vfs, format constants, errors, the package index)", () => {
    const below = /from "(\.\.\/)+(buffered|cache|fs|journal|device|wasm)\//;
    const offenders: string[] = [];
    const walk = (d: string) => {
      if (d.endsWith(".ts")) {
        for (const line of fs.readFileSync(d, "utf8").split("\n")) if (below.test(line)) offenders.push(`${d}: ${line}`);
        return;
      }
      for (const e of fs.readdirSync(d, { withFileTypes: true })) {
        const p = path.join(d, e.name);
        if (e.isDirectory()) walk(p);
        else if (p.endsWith(".ts")) for (const line of fs.readFileSync(p, "utf8").split("\n")) if (below.test(line)) offenders.push(`${p}: ${line}`);
      }
    };
    const cli = path.join(__dirname, "..", "host", "cli");
    walk(path.join(cli, "get"));
    for (const c of ["get.ts", "cat.ts"]) walk(path.join(cli, "commands", c));
    expect(offenders).toEqual([]);
  });
});
