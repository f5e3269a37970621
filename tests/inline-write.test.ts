// Writing inline-data files (host/fs/inline-write.ts, host/buffered/bh/inline.ts):
// images from `mkfs.ext4 -O inline_data -d` (and files the kernel wrote
// through a loop mount) get the same sequence of writes, appends,
// overwrites, writes past EOF, truncates, fallocates, creates and unlinks
// through our node:fs surface and through the kernel (python3 syscalls on a
// loop mount of a copy). Afterwards e2fsck -fn must be clean, our remount
// and the kernel's mount must read the model's bytes, and every file must
// be laid out as the kernel laid it out: inline (with the same inline size)
// or in blocks (the same written / unwritten map per logical block).

import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mount } from "../host/index.js";
import type { Volume } from "../host/index.js";
import { maxInlineSize } from "../host/fs/inline-write.js";
import type { Ext4 } from "../host/fs/super.js";
import { missingTools, runSync } from "./helpers/exec.js";
import { fsckClean, mkfsEnv } from "./helpers/images.js";
import { loopMountSupport, withLoopMountSync } from "./helpers/kernel.js";
import { mulberry32 } from "./helpers/random.js";

const missing = missingTools(["mkfs.ext4", "e2fsck", "debugfs", "python3"], "e2fsprogs and python3");
if (missing) console.log(`inline-write: skipped: ${missing}`);
const loop = missing ? { ok: false as const, reason: "" } : loopMountSupport();
if (!missing && !loop.ok) console.log(`inline-write: the kernel comparisons are skipped: ${loop.reason}`);
const d = missing ? describe.skip : describe;
const dk = missing || !loop.ok ? describe.skip : describe;

let work: string;
beforeAll(() => { if (!missing) work = fs.mkdtempSync(path.join(os.tmpdir(), "ext4wasm-inline-")); });
afterAll(() => { if (work) fs.rmSync(work, { recursive: true, force: true }); });

const fsOf = (vol: Volume) => (vol as unknown as { fs: Ext4 }).fs;

/** An op on a file: write bytes at an offset (-1: append), truncate, fallocate, create (empty), unlink. */
type Op =
  | ["write", string, number, number]
  | ["truncate", string, number]
  | ["falloc", string, number, number, number]
  | ["create", string]
  | ["unlink", string];

const KEEP = 0x01, PUNCH = 0x02;

/** The bytes of a write: content(len, seed) with seed from the offset, never zero (a zero reads as a hole too). */
function content(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = 1 + ((i * 31 + seed * 7) % 250);
  return b;
}

interface ImageOpts { blockSize?: number; inodeSize?: number; features?: string; size?: string }

/** mkfs.ext4 -O inline_data -d over `files` (name to bytes). */
function makeImage(name: string, files: Record<string, Buffer>, o: ImageOpts = {}): string {
  const src = path.join(work, `${name}-src`);
  fs.rmSync(src, { recursive: true, force: true });
  fs.mkdirSync(src);
  for (const [f, b] of Object.entries(files)) fs.writeFileSync(path.join(src, f), b);
  const img = path.join(work, `${name}.img`);
  fs.rmSync(img, { force: true });
  runSync("mkfs.ext4", ["-q", "-F", "-O", o.features ?? "inline_data", "-b", String(o.blockSize ?? 4096), "-I", String(o.inodeSize ?? 256),
    "-U", "5a1e0c3e-2b4c-4d3e-8f2a-1b2c3d4e5f61", "-E", "hash_seed=1b2c3d4e-0000-4000-8000-000000000002", "-d", src, img, o.size ?? "16M"],
  { env: { ...mkfsEnv(work), SOURCE_DATE_EPOCH: "1700000000" } });
  return img;
}

/** Applies ops to a model of the files' bytes. */
function applyModel(model: Map<string, Buffer>, ops: Op[]): void {
  for (const op of ops) {
    const f = op[1];
    const cur = model.get(f) ?? Buffer.alloc(0);
    switch (op[0]) {
      case "write": {
        const at = op[2] < 0 ? cur.length : op[2];
        const data = content(op[3], at % 251);
        const out = Buffer.alloc(Math.max(cur.length, at + data.length));
        cur.copy(out);
        data.copy(out, at);
        model.set(f, out);
        break;
      }
      case "truncate": {
        const out = Buffer.alloc(op[2]);
        cur.copy(out, 0, 0, Math.min(cur.length, op[2]));
        model.set(f, out);
        break;
      }
      case "falloc": {
        const [, , mode, off, len] = op;
        if (mode & PUNCH) {
          const out = Buffer.from(cur);
          out.fill(0, Math.min(off, out.length), Math.min(off + len, out.length));
          model.set(f, out);
        } else if (!(mode & KEEP) && off + len > cur.length) {
          const out = Buffer.alloc(off + len);
          cur.copy(out);
          model.set(f, out);
        }
        break;
      }
      case "create": model.set(f, Buffer.alloc(0)); break;
      case "unlink": model.delete(f); break;
    }
  }
}

/** The ops through our node:fs surface on a read-write mount of img. */
function oursRun(img: string, ops: Op[], mountOptions?: string): void {
  const vol = mount(img, { mountOptions });
  try {
    applyOurs(vol, ops);
  } finally {
    vol.unmount();
  }
}

function applyOurs(vol: Volume, ops: Op[]): void {
  {
    for (const op of ops) {
      const p = `/${op[1]}`;
      switch (op[0]) {
        case "write": {
          const fd = vol.openSync(p, op[2] < 0 ? "a" : "r+");
          try {
            const at = op[2] < 0 ? Number(vol.fstatSync(fd).size) : op[2];
            vol.writeSync(fd, content(op[3], at % 251), 0, op[3], op[2] < 0 ? null : op[2]);
          } finally { vol.closeSync(fd); }
          break;
        }
        case "truncate": vol.truncateSync(p, op[2]); break;
        case "falloc": {
          const fd = vol.openSync(p, "r+");
          try { vol.fallocateSync(fd, op[3], op[4], { keepSize: (op[2] & KEEP) !== 0, punchHole: (op[2] & PUNCH) !== 0 }); } finally { vol.closeSync(fd); }
          break;
        }
        case "create": vol.writeFileSync(p, ""); break;
        case "unlink": vol.unlinkSync(p); break;
      }
    }
  }
}

const PY = `
import ctypes, json, os, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong]
mnt, ops = sys.argv[1], json.loads(sys.argv[2])
def content(n, seed):
    return bytes(1 + ((i * 31 + seed * 7) % 250) for i in range(n))
for op in ops:
    p = os.path.join(mnt, op[1])
    if op[0] == "write":
        fd = os.open(p, os.O_WRONLY | (os.O_APPEND if op[2] < 0 else 0))
        at = os.fstat(fd).st_size if op[2] < 0 else op[2]
        if op[2] < 0: os.write(fd, content(op[3], at % 251))
        else: os.pwrite(fd, content(op[3], at % 251), at)
        os.close(fd)
    elif op[0] == "truncate":
        fd = os.open(p, os.O_WRONLY)
        os.ftruncate(fd, op[2])
        os.close(fd)
    elif op[0] == "falloc":
        fd = os.open(p, os.O_RDWR)
        if libc.fallocate(fd, op[2], op[3], op[4]) != 0: raise OSError(ctypes.get_errno(), "fallocate")
        os.close(fd)
    elif op[0] == "create": open(p, "wb").close()
    elif op[0] == "unlink": os.unlink(p)

`;

function kernelRun(img: string, ops: Op[], mountOptions?: string): void {
  withLoopMountSync(img, (mnt) => {
    const r = runSync("python3", ["-c", PY, mnt, JSON.stringify(ops)]);
    expect(r.code, r.stderr).toBe(0);
  }, { options: mountOptions });
}

/** A file's layout as debugfs shows it: inline with its inline size, or the written/unwritten map of its blocks. */
function layout(img: string, file: string): string {
  const st = runSync("debugfs", ["-R", `stat /${file}`, img]).stdout;
  const flags = Number(/Flags: (0x[0-9a-f]+)/.exec(st)?.[1]);
  const size = /Size: (\d+)/.exec(st)?.[1];
  if (flags & 0x10000000) return `size ${size} inline ${/Size of inline data: (\d+)/.exec(st)?.[1]}`;
  const ex = runSync("debugfs", ["-R", `ex /${file}`, img]).stdout;
  // Leaf extents, merged where they meet logically: where each block went is mballoc's business (see docs/design.md).
  const runs: { a: number; b: number; k: string }[] = [];
  for (const m of ex.matchAll(/^ *(\d+)\/ *(\d+) +\d+\/ *\d+ +(\d+) *- *(\d+) +\d+ *- *\d+ +\d+ *(Uninit)?$/gm)) {
    if (m[1] !== m[2]) continue;
    const r = { a: Number(m[3]), b: Number(m[4]), k: m[5] ? "U" : "W" };
    const last = runs[runs.length - 1];
    if (last && last.k === r.k && last.b + 1 === r.a) last.b = r.b;
    else runs.push(r);
  }
  const blocks = /Blockcount: (\d+)/.exec(st)?.[1];
  return `size ${size} ${flags & 0x80000 ? "extents" : `blockmap ${blocks}`} ${runs.map((r) => `${r.a}-${r.b}${r.k}`).join(",")}`;
}

/** Every file of the model reads back as the model says, through our read-only remount. */
function expectOurRead(img: string, model: Map<string, Buffer>): void {
  const vol = mount(img, { readOnly: true });
  try {
    const names = vol.readdirSync("/").filter((n) => n !== "lost+found").sort();
    expect(names).toEqual([...model.keys()].sort());
    for (const [f, b] of model) expect(Buffer.from(vol.readFileSync(`/${f}`) as Buffer).equals(b), `our read of ${f}`).toBe(true);
  } finally {
    vol.unmount();
  }
}

/** The kernel's read of every file (read-only loop mount) equals the model. */
function expectKernelRead(img: string, model: Map<string, Buffer>): void {
  withLoopMountSync(img, (mnt) => {
    const names = fs.readdirSync(mnt).filter((n) => n !== "lost+found").sort();
    expect(names).toEqual([...model.keys()].sort());
    for (const [f, b] of model) expect(fs.readFileSync(path.join(mnt, f)).equals(b), `kernel read of ${f}`).toBe(true);
  }, { readOnly: true });
}

interface Scenario {
  name: string; files: Record<string, Buffer>; ops: Op[]; image?: ImageOpts; mountOptions?: string;
  /** Layouts to expect instead of replaying the ops in the kernel. */
  expect?: Record<string, string>;
}

/** Ours and the kernel's run of one scenario, then every check. */
async function runScenario(s: Scenario): Promise<void> {
  const img = makeImage(s.name, s.files, s.image);
  const kimg = `${img}.kernel`;
  fs.copyFileSync(img, kimg);
  const model = new Map(Object.entries(s.files).map(([k, v]) => [k, Buffer.from(v)]));
  applyModel(model, s.ops);
  oursRun(img, s.ops, s.mountOptions);
  await fsckClean(img);
  expectOurRead(img, model);
  if (s.expect) for (const [f, l] of Object.entries(s.expect)) expect(layout(img, f), `layout of ${f}`).toBe(l);
  if (!loop.ok) return;
  expectKernelRead(img, model);
  if (s.expect) return;
  kernelRun(kimg, s.ops, s.mountOptions);
  for (const f of model.keys()) expect(layout(img, f), `layout of ${f}`).toBe(layout(kimg, f));
  fs.rmSync(kimg);
}

const small = (n: number, seed = 3) => content(n, seed);

const SCENARIOS: Scenario[] = [
  { name: "overwrite", files: { a: small(5), b: small(100) }, ops: [["write", "a", 0, 2], ["write", "b", 10, 50], ["write", "b", 70, 30]] },
  { name: "append", files: { a: small(50), b: small(60) }, ops: [["write", "a", -1, 40], ["write", "b", -1, 1], ["write", "b", -1, 67]] },
  { name: "past-eof-inline", files: { a: small(5), b: small(70) }, ops: [["write", "a", 100, 2], ["write", "b", 120, 8]] },
  { name: "grow-to-blocks", files: { a: small(100), b: small(60), c: small(5) }, ops: [["write", "a", 100, 5000], ["write", "b", -1, 69], ["write", "c", 4095, 1]] },
  { name: "grow-far", files: { a: small(20) }, ops: [["write", "a", 1 << 20, 3], ["write", "a", 0, 10]] },
  { name: "truncate", files: { a: small(100), c: small(30) }, ops: [["truncate", "a", 30], ["truncate", "c", 61], ["write", "a", 20, 50]] },
  // Truncates to 0 and up within the inline size: the kernel here (6.18) wedged its journal twice in a run of
  // these (with a conversion) through truncate(2), so they are not replayed there; the layouts are the ones
  // it gave when run one by one.
  { name: "truncate-up-inline", files: { b: small(30), d: small(90), e: small(5) }, ops: [
    ["truncate", "b", 60], ["truncate", "d", 0], ["truncate", "d", 10], ["truncate", "e", 50], ["write", "e", 55, 5],
  ], expect: { b: "size 60 inline 60", d: "size 10 inline 60", e: "size 60 inline 60" } },
  { name: "falloc", files: { a: small(40), b: small(40), c: small(40), d: small(100) }, ops: [
    ["falloc", "a", 0, 0, 10], ["falloc", "b", KEEP, 0, 8192], ["falloc", "c", KEEP | PUNCH, 0, 10], ["falloc", "d", 0, 4096, 4096],
  ] },
  { name: "new-files", files: { keep: small(3) }, ops: [
    ["create", "n1"], ["write", "n1", 0, 3], ["create", "n2"], ["write", "n2", 0, 128], ["create", "n3"], ["write", "n3", 0, 129],
    ["create", "n4"], ["write", "n4", 0, 20], ["write", "n4", -1, 20], ["write", "n4", -1, 200], ["create", "n5"], ["truncate", "n5", 100], ["write", "n5", 0, 10],
    ["create", "n6"], ["falloc", "n6", KEEP, 0, 10], ["write", "n6", 0, 10], ["create", "n7"],
  ] },
  { name: "unlink", files: { a: small(5), b: small(120), c: small(7) }, ops: [["unlink", "a"], ["write", "b", 0, 1], ["unlink", "b"], ["create", "x"], ["write", "x", 0, 9], ["unlink", "x"]] },
  { name: "k1", image: { blockSize: 1024 }, files: { a: small(5), b: small(90) }, ops: [["write", "a", -1, 100], ["write", "b", 1000, 100], ["create", "n"], ["write", "n", 0, 50], ["write", "n", -1, 1000]] },
  { name: "inode512", image: { inodeSize: 512 }, files: { a: small(300) }, ops: [["write", "a", -1, 100], ["create", "n"], ["write", "n", 0, 400], ["write", "a", -1, 200]] },
  { name: "journal", mountOptions: "data=journal", files: { a: small(50), b: small(50) }, ops: [["write", "a", 0, 60], ["write", "b", -1, 4000], ["create", "n"], ["write", "n", 0, 10], ["truncate", "a", 500]] },
  { name: "nodelalloc", mountOptions: "nodelalloc", files: { a: small(50), b: small(50) }, ops: [["write", "a", 0, 60], ["write", "b", -1, 4000], ["create", "n"], ["write", "n", 0, 10], ["falloc", "a", 0, 0, 20000]] },
  { name: "noextents", image: { features: "inline_data,^extent,^64bit" }, files: { a: small(50), b: small(50) }, ops: [["write", "a", 0, 60], ["write", "b", -1, 5000], ["create", "n"], ["write", "n", 0, 300]] },
];

d("inline-data writes: our run, e2fsck, our remount, the kernel's read and layout", () => {
  for (const s of SCENARIOS) it(s.name, () => runScenario(s), 60_000);
});

d("maxInlineSize follows ext4_get_max_inline_size", () => {
  it("a 256-byte inode holds 128 bytes inline with no other xattr, 60 + free space with one", () => {
    const img = makeImage("max", { a: small(5) });
    const vol = mount(img);
    try {
      const f = fsOf(vol);
      const ino = Number(vol.statSync("/a").ino);
      const inode = f.iget(ino);
      try {
        expect(maxInlineSize(f, inode)).toBe(128);
        vol.setxattr("/a", "user.k", Buffer.from("12345678"));
        // 20-byte entry for "data" is there already; user.k takes 16 + 4 (name "k" rounded) + 8.
        expect(maxInlineSize(f, inode)).toBe(128 - 20 - 8);
      } finally { f.iput(inode); }
    } finally { vol.unmount(); }
  });
});

dk("files the kernel wrote inline, then changed by us", () => {
  it("kernel-written inline files: overwritten, grown, truncated and fallocated by us", async () => {
    const img = makeImage("kwritten", {});
    const model = new Map<string, Buffer>();
    const kops: Op[] = [["create", "a"], ["write", "a", 0, 40], ["create", "b"], ["write", "b", 0, 100], ["create", "c"], ["write", "c", 0, 7], ["create", "d"], ["write", "d", 0, 120]];
    kernelRun(img, kops);
    applyModel(model, kops);
    expect(layout(img, "b")).toBe("size 100 inline 100");
    const ops: Op[] = [["write", "a", -1, 30], ["write", "b", 50, 5000], ["truncate", "c", 3], ["truncate", "c", 90], ["falloc", "d", KEEP, 0, 100]];
    const kimg = `${img}.kernel`;
    fs.copyFileSync(img, kimg);
    oursRun(img, ops);
    applyModel(model, ops);
    await fsckClean(img);
    expectOurRead(img, model);
    expectKernelRead(img, model);
    kernelRun(kimg, ops);
    for (const f of model.keys()) expect(layout(img, f), `layout of ${f}`).toBe(layout(kimg, f));
  }, 60_000);
});

d("a seeded random sequence against a model", () => {
  for (const [seed, mountOptions] of [[1, undefined], [2, "nodelalloc"], [3, "data=journal"]] as const) {
    it(`seed ${seed} ${mountOptions ?? "defaults"}`, async () => {
      const rnd = mulberry32(seed);
      const pick = (n: number) => Math.floor(rnd() * n);
      const names = ["f0", "f1", "f2", "f3"];
      const files: Record<string, Buffer> = {};
      for (const n of names) files[n] = small(pick(130), seed);
      const img = makeImage(`random-${seed}`, files);
      const model = new Map(Object.entries(files).map(([k, v]) => [k, Buffer.from(v)]));
      let vol = mount(img, { mountOptions });
      try {
        for (let step = 0; step < 300; step++) {
          const f = names[pick(names.length)];
          const r = rnd();
          const size = () => (rnd() < 0.8 ? pick(160) : pick(9000));
          let op: Op;
          if (!model.has(f)) op = ["create", f];
          else if (r < 0.45) op = ["write", f, rnd() < 0.3 ? -1 : size(), 1 + pick(rnd() < 0.8 ? 60 : 3000)];
          else if (r < 0.65) op = ["truncate", f, size()];
          else if (r < 0.75) op = ["falloc", f, rnd() < 0.5 ? KEEP : 0, pick(200), 1 + pick(300)];
          else if (r < 0.8) op = ["falloc", f, KEEP | PUNCH, pick(200), 1 + pick(300)];
          else if (r < 0.85) op = ["unlink", f];
          else op = ["write", f, pick(130), 1 + pick(20)];
          applyOurs(vol, [op]);
          applyModel(model, [op]);
          const want = model.get(f);
          if (want) expect(Buffer.from(vol.readFileSync(`/${f}`) as Buffer).equals(want), `step ${step} ${JSON.stringify(op)}`).toBe(true);
          if (step % 25 === 24) {
            vol.unmount();
            if (step % 100 === 99) await fsckClean(img);
            vol = mount(img, { mountOptions });
            for (const [n, b] of model) expect(Buffer.from(vol.readFileSync(`/${n}`) as Buffer).equals(b), `after remount at step ${step}: ${n}`).toBe(true);
          }
        }
      } finally {
        vol.unmount();
      }
      await fsckClean(img);
      expectOurRead(img, model);
      if (loop.ok) expectKernelRead(img, model);
    }, 120_000);
  }
});

dk("inline directories grow into system.data as the kernel's do (ext4_update_inline_dir)", () => {
  for (const [count, inodeSize] of [[7, 256], [8, 256], [20, 512], [40, 512]] as const) {
    it(`${count} names in a new directory, ${inodeSize}-byte inodes`, async () => {
      const img = makeImage(`dir-${count}-${inodeSize}`, {}, { inodeSize });
      const kimg = `${img}.kernel`;
      fs.copyFileSync(img, kimg);
      const names = Array.from({ length: count }, (_, i) => `n${String(i).padStart(3, "0")}`);
      const vol = mount(img);
      try {
        vol.mkdirSync("/d");
        for (const n of names) vol.writeFileSync(`/d/${n}`, "");
      } finally { vol.unmount(); }
      await fsckClean(img);
      withLoopMountSync(kimg, (mnt) => {
        fs.mkdirSync(path.join(mnt, "d"));
        for (const n of names) fs.writeFileSync(path.join(mnt, "d", n), "");
      });
      const dirLayout = (i: string) => {
        const st = runSync("debugfs", ["-R", "stat /d", i]).stdout;
        return `size ${/Size: (\d+)/.exec(st)?.[1]} flags ${/Flags: (0x[0-9a-f]+)/.exec(st)?.[1]} inline ${/Size of inline data: (\d+)/.exec(st)?.[1] ?? "-"}`;
      };
      expect(dirLayout(img)).toBe(dirLayout(kimg));
      withLoopMountSync(img, (mnt) => expect(fs.readdirSync(path.join(mnt, "d")).sort()).toEqual(names), { readOnly: true });
    }, 60_000);
  }
});

d("a crash after the conversion has committed keeps the inline bytes (block 0 reaches the disk first)", () => {
  for (const mountOptions of [undefined, "data=journal", "nodelalloc"]) {
    it(mountOptions ?? "data=ordered, delalloc", async () => {
      const old = small(100, 9);
      const img = makeImage(`crash-${mountOptions ?? "ordered"}`, { a: old, b: small(50, 4) });
      const bytes = new Uint8Array(fs.readFileSync(img));
      const vol = mount(bytes, { mountOptions });
      let crashed: Uint8Array;
      try {
        const fd = vol.openSync("/a", "r+");
        // Past what the inode holds: the conversion, then a delayed (or allocated) write of the rest.
        vol.writeSync(fd, content(3000, 5), 0, 3000, 100);
        vol.closeSync(fd);
        vol.writeFileSync("/b", small(10, 6), { flag: "a" });
        // The commit that carries the conversion, then the power goes: no writeback of the delayed blocks.
        fsOf(vol).commit();
        crashed = bytes.slice();
      } finally {
        vol.unmount();
      }
      fs.writeFileSync(img, crashed);
      // Our replay; then e2fsck and the kernel see the same.
      const after = mount(img);
      try {
        const a = Buffer.from(after.readFileSync("/a") as Buffer);
        // Either the old file (the write's blocks never got there) or the old bytes then the new ones.
        expect(a.subarray(0, 100).equals(old), "the inline bytes survive in block 0").toBe(true);
        if (a.length > 100) expect(a.subarray(100).equals(content(3000, 5).subarray(0, a.length - 100))).toBe(true);
      } finally {
        after.unmount();
      }
      await fsckClean(img);
    }, 60_000);
  }
});
