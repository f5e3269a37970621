// Directory walks on trees as real images have them: big linear directories
// (mkfs.ext4 -d writes no htree), each walk must cost O(entries) directory
// blocks, not a scan per name. Costs are counted (blocks parsed), never timed.

import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { INODE_FLAGS } from "../host/format/inode.js";
import { dirStats } from "../host/fs/dir.js";
import { mount } from "../host/index.js";
import { ensureBuilt, runCli } from "./cli-helpers.js";
import { loopMountSupport, withLoopMountSync } from "./helpers/kernel.js";

const N = 20_000;
let work: string;
let image: string;

function sh(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: "utf8", maxBuffer: 256 << 20 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

beforeAll(() => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), "ext4wasm-walk-"));
  const src = path.join(work, "src");
  fs.mkdirSync(path.join(src, "big"), { recursive: true });
  for (let i = 0; i < N; i++) fs.writeFileSync(path.join(src, "big", `entry-${i}`), i % 7 === 0 ? `${i}` : "");
  fs.symlinkSync("entry-1", path.join(src, "big", "link"));
  image = path.join(work, "linear.img");
  sh("mkfs.ext4", ["-q", "-F", "-b", "4096", "-N", String(N + 64), "-d", src, image, "64M"]);
}, 120_000);

afterAll(() => {
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

describe("a 20 000-entry linear directory", () => {
  it("is linear (mkfs -d writes no index), so the test exercises linear lookups", () => {
    const vol = mount(image, { readOnly: true });
    try {
      expect(vol.inodeOf("/big").flags & INODE_FLAGS.INDEX).toBe(0);
    } finally {
      vol.unmount();
    }
  });

  it("readdirSync({ withFileTypes }) + lstatSync(join) per entry parses each directory block O(1) times", () => {
    const vol = mount(image, { readOnly: true });
    try {
      const blocks = Math.ceil(vol.statSync("/big").size / 4096);
      dirStats.blocksParsed = 0;
      const ents = vol.readdirSync("/big", { withFileTypes: true });
      expect(ents.length).toBe(N + 1);
      let files = 0;
      for (const e of ents) {
        const st = vol.lstatSync(path.posix.join("/big", e.name as string));
        if (st.isFile()) files++;
        expect(st.ino).toBe(e.ino);
      }
      expect(files).toBe(N);
      // One readdir pass plus the root's block: a per-name scan would be ~N * blocks / 2.
      expect(dirStats.blocksParsed).toBeLessThanOrEqual(2 * blocks + 4);
    } finally {
      vol.unmount();
    }
  });

  it("lookups without a readdir first scan the directory once, and misses are still misses", () => {
    const vol = mount(image, { readOnly: true });
    try {
      const blocks = Math.ceil(vol.statSync("/big").size / 4096);
      dirStats.blocksParsed = 0;
      for (let i = N - 1; i >= 0; i -= 3) expect(vol.statSync(`/big/entry-${i}`).size).toBe(i % 7 === 0 ? String(i).length : 0);
      for (let i = 0; i < 1000; i++) expect(vol.existsSync(`/big/absent-${i}`)).toBe(false);
      expect(vol.readlinkSync("/big/link")).toBe("entry-1");
      expect(dirStats.blocksParsed).toBeLessThanOrEqual(2 * blocks + 4);
    } finally {
      vol.unmount();
    }
  });
});

describe("a linear directory too big for the mount's directory cache", () => {
  it("is not read whole again per lookup: lookups scan from where the last one found its name", () => {
    // 4 MiB of cache keeps whole directories of about a thousand names: this one is not kept.
    const vol = mount(image, { readOnly: true, cacheSize: 4 << 20 });
    try {
      const blocks = Math.ceil(vol.statSync("/big").size / 4096);
      const big = vol.inodeOf("/big", true);
      dirStats.blocksParsed = 0;
      // In on-disk order (as getdents hands them), each lookup starts at the block of the previous one.
      const ents = vol.readdirInode(big).slice(0, 2000);
      for (const e of ents) expect(vol.lstatSync(`/big/${Buffer.from(e.name).toString()}`).ino).toBe(e.ino);
      // A full read per lookup would be about 2000 * blocks.
      expect(dirStats.blocksParsed).toBeLessThanOrEqual(3 * blocks + 2000);
    } finally {
      vol.unmount();
    }
  });
});

// A 5000-level tree (about 10 KB of path at the bottom), as the kernel makes it.
describe("a tree deeper than PATH_MAX", () => {
  const DEPTH = 5000;
  let deep: string | null = null;
  let how = "";
  let skipReason = "";

  beforeAll(() => {
    ensureBuilt();
    deep = path.join(work, "deep.img");
    sh("mkfs.ext4", ["-q", "-F", "-b", "1024", "-N", String(DEPTH + 64), deep, "32M"]);
    // Each level made relative to the last (mkdir -p of a 10 KB path fails).
    const script = `const fs=require("fs");for(let i=0;i<${DEPTH};i++){fs.mkdirSync("d");process.chdir("d")}fs.writeFileSync("leaf.txt","bottom\\n");fs.symlinkSync("leaf.txt","leaf-link")`;
    const loop = loopMountSupport();
    if (loop.ok) {
      withLoopMountSync(deep, (mnt) => sh(process.execPath, ["-e", `process.chdir(${JSON.stringify(mnt)});${script}`]));
      how = "the kernel (loop mount)";
    } else {
      // No loop mounts: the same tree on the host, then mkfs -d.
      const src = path.join(work, "deep-src");
      fs.mkdirSync(src);
      sh(process.execPath, ["-e", `process.chdir(${JSON.stringify(src)});${script}`]);
      const r = spawnSync("mkfs.ext4", ["-q", "-F", "-b", "1024", "-N", String(DEPTH + 64), "-d", src, deep, "32M"], { encoding: "utf8" });
      if (r.status !== 0) { skipReason = `no loop mounts (${loop.reason}) and mkfs -d failed: ${r.stderr}`; deep = null; }
      else how = `mkfs -d (no loop mounts: ${loop.reason})`;
      spawnSync("rm", ["-rf", src]);
    }
    if (deep) sh("e2fsck", ["-fn", deep]);
    console.log(deep ? `deep tree made by ${how}` : `skipping deep-tree tests: ${skipReason}`);
  }, 300_000);

  it("ls -R lists every level and the file at the bottom", (ctx) => {
    if (!deep) return ctx.skip();
    const r = runCli(["ls", "-R", deep, "/d"]);
    expect(r.status, r.stderr).toBe(0);
    const text = r.stdout.toString("utf8");
    const headers = text.split("\n").filter((l) => l.endsWith(":"));
    expect(headers.length).toBe(DEPTH);
    const bottom = `/d${"/d".repeat(DEPTH - 1)}:`;
    expect(headers[headers.length - 1]).toBe(bottom);
    expect(text.endsWith(`${bottom}\nleaf-link\nleaf.txt\n`)).toBe(true);
  });

  it("get copies all of it; the node:fs API keeps PATH_MAX (ENAMETOOLONG, as Linux)", (ctx) => {
    if (!deep) return ctx.skip();
    const out = path.join(work, "deep-out");
    try {
      const r = runCli(["get", deep, "/d", out]);
      expect(r.status, r.stderr).toBe(0);
      const dirs = sh("find", [out, "-type", "d"]).split("\n").filter(Boolean);
      expect(dirs.length).toBe(DEPTH);
      const leaf = sh("find", [out, "-name", "leaf.txt", "-execdir", "cat", "{}", ";"]);
      expect(leaf).toBe("bottom\n");
      expect(sh("find", [out, "-name", "leaf-link", "-printf", "%l"])).toBe("leaf.txt");
      const vol = mount(deep, { readOnly: true });
      try {
        expect(() => vol.statSync(`/d${"/d".repeat(DEPTH - 1)}/leaf.txt`)).toThrow(/ENAMETOOLONG/);
      } finally {
        vol.unmount();
      }
    } finally {
      spawnSync("rm", ["-rf", out]);
    }
  }, 120_000);
});

// get past damaged inodes, as debugfs rdump goes on: every other entry copied,
// each failure named by its path, a summary, exit status 1.
describe("get of a tree with damaged inodes", () => {
  let img: string;
  beforeAll(() => {
    ensureBuilt();
    const src = path.join(work, "dmg-src");
    for (const d of ["a", "b", "c"]) fs.mkdirSync(path.join(src, d), { recursive: true });
    fs.writeFileSync(path.join(src, "a", "ok1.txt"), "one\n");
    fs.writeFileSync(path.join(src, "a", "bad.txt"), "x".repeat(10000));
    fs.writeFileSync(path.join(src, "b", "ok2.txt"), "two\n");
    fs.writeFileSync(path.join(src, "c", "hidden.txt"), "under a broken directory\n");
    fs.writeFileSync(path.join(src, "z.txt"), "last\n");
    img = path.join(work, "damaged.img");
    sh("mkfs.ext4", ["-q", "-F", "-b", "4096", "-d", src, img, "16M"]);
    // Break the extent header magic of one file and of one directory (debugfs rewrites the inode checksum).
    sh("debugfs", ["-w", "-R", "sif /a/bad.txt block[0] 0x12345678", img]);
    sh("debugfs", ["-w", "-R", "sif /c block[0] 0x12345678", img]);
  });

  it("copies everything else, names each failure by path, summarises, exits 1", () => {
    const out = path.join(work, "dmg-out");
    const r = runCli(["get", img, "/", out]);
    expect(r.status).toBe(1);
    expect(fs.readFileSync(path.join(out, "a", "ok1.txt"), "utf8")).toBe("one\n");
    expect(fs.readFileSync(path.join(out, "b", "ok2.txt"), "utf8")).toBe("two\n");
    expect(fs.readFileSync(path.join(out, "z.txt"), "utf8")).toBe("last\n");
    expect(fs.statSync(path.join(out, "c")).isDirectory()).toBe(true);
    expect(fs.existsSync(path.join(out, "a", "bad.txt"))).toBe(false); // no half copy that looks whole
    const lines = r.stderr.split("\n").filter(Boolean);
    expect(lines.some((l) => l.startsWith("ext4wasm: cannot copy '/a/bad.txt': EFSCORRUPTED"))).toBe(true);
    expect(lines.some((l) => l.startsWith("ext4wasm: cannot copy '/c': EFSCORRUPTED"))).toBe(true);
    expect(lines[lines.length - 1]).toMatch(/^ext4wasm: get: 2 of \d+ entries not copied/);
  });

  it("--json gives the summary with each failure's path and code", () => {
    const out = path.join(work, "dmg-out-json");
    const r = runCli(["get", "--json", img, "/", out]);
    expect(r.status).toBe(1);
    const j = JSON.parse(r.stdout.toString("utf8"));
    expect(j.failed).toBe(2);
    expect(j.failures.map((f: { path: string }) => f.path).sort()).toEqual(["/a/bad.txt", "/c"]);
    expect(j.failures.every((f: { code: string }) => f.code === "EFSCORRUPTED")).toBe(true);
    expect(j.entries).toBeGreaterThanOrEqual(9);
    expect(j.bytes).toBeGreaterThan(0);
  });
});

describe("the progress line's total", () => {
  it("counts the whole image from the group descriptors and a subtree by its directories", async () => {
    const { treeSize } = await import("../host/cli/get/tree-size.js");
    const { Progress } = await import("../host/cli/get/progress.js");
    const vol = mount(image, { readOnly: true });
    try {
      // /, lost+found, big, its N files and the symlink.
      expect(treeSize(vol, vol.inodeOf("/"))).toBe(N + 4);
      expect(treeSize(vol, vol.inodeOf("/big"))).toBe(N + 2);
    } finally {
      vol.unmount();
    }
    const p = new Progress(true);
    p.total = 200;
    p.files = 50;
    expect(p.text()).toBe("50/200 files (25%), 0 B");
    p.files = 200;
    expect(p.text()).toMatch(/\(99%\)/);
  });
});

// get reads each file once: its data is dropped from the cache right after
// the copy (drop-behind), so the cache holds metadata, not the tree.
describe("get's cache use", () => {
  it("stays bounded while copying a tree much larger than the bound", async () => {
    const { TreeCopier } = await import("../host/cli/get/copy-tree.js");
    const { Progress } = await import("../host/cli/get/progress.js");
    const src = path.join(work, "data-src");
    fs.mkdirSync(src);
    const chunk = Buffer.alloc(1 << 20);
    for (let i = 0; i < 48; i++) {
      for (let j = 0; j < chunk.length; j += 4096) chunk.writeUInt32LE(i * 65536 + j + 1, j);
      fs.writeFileSync(path.join(src, `f${i}`), chunk);
    }
    const img = path.join(work, "data.img");
    sh("mkfs.ext4", ["-q", "-F", "-b", "4096", "-d", src, img, "128M"]);
    const vol = mount(img, { readOnly: true, cacheSize: 128 << 20 });
    const out = path.join(work, "data-out");
    let peak = 0;
    class Sampling extends Progress {
      override addBytes(n: number): void {
        super.addBytes(n);
        peak = Math.max(peak, vol.fs.cache.stats().usedBytes);
      }
    }
    try {
      const r = new TreeCopier(vol, { force: false, stagingParent: work, progress: new Sampling(true) }).run(Buffer.from("/"), Buffer.from(out));
      expect(r.failures).toEqual([]);
      expect(r.bytes).toBe(48 << 20);
      // 48 MiB copied through a 128 MiB cache: without drop-behind it would all stay cached.
      expect(peak).toBeLessThan(8 << 20);
      expect(fs.readFileSync(path.join(out, "f47")).equals(chunk)).toBe(true);
    } finally {
      vol.unmount();
    }
  }, 60_000);
});
