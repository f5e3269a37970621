// The write-path pieces together, on journaled images (each piece's own
// tests run without a journal): inode allocation, directory entries, block
// allocation and extent trees, all through jbd2 handles, then a clean
// unmount or a crash after the commit. Judged by e2fsck, debugfs and the
// kernel, which must see exactly the tree that was written.

import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mount, MemoryDevice, RecordingDevice } from "../host/index.js";
import type { Ext4 } from "../host/fs/super.js";
import { newInode } from "../host/fs/ialloc.js";
import { type Ext4Inode, setInodeSize } from "../host/fs/inode.js";
import { markInodeDirty } from "../host/fs/inode-write.js";
import { ext4MapBlocks, GET_BLOCKS } from "../host/fs/map-blocks.js";
import { addEntry, addEntryCredits, incDirLinks } from "../host/fs/namei.js";
import { FT } from "../host/format/dirent.js";
import { S_IFDIR, S_IFREG } from "../host/format/inode.js";
import { setU16, setU32 } from "../host/format/bytes.js";
import { missingTools, runSync } from "./helpers/exec.js";
import { mkfsEnv } from "./helpers/images.js";
import { loopMountSupport, withLoopMountSync } from "./helpers/kernel.js";

const missing = missingTools(["mkfs.ext4", "e2fsck", "debugfs"], "e2fsprogs");
if (missing) console.log(`write-e2e: skipped: ${missing}`);
const d = missing ? describe.skip : describe;
const loop = loopMountSupport();
if (!loop.ok) console.log(`write-e2e: kernel comparisons skipped: ${loop.reason}`);

let work: string;
beforeAll(() => { if (!missing) work = fs.mkdtempSync(path.join(os.tmpdir(), "ext4wasm-e2e-")); });
afterAll(() => { if (work) fs.rmSync(work, { recursive: true, force: true }); });

const enc = (s: string) => new TextEncoder().encode(s);
const fsOf = (vol: unknown) => (vol as { fs: Ext4 }).fs;

/** File bytes that differ per file and per block, so a block in the wrong place shows. */
function content(name: string, size: number): Buffer {
  const b = Buffer.alloc(size);
  let h = 0;
  for (const c of name) h = (h * 31 + c.charCodeAt(0)) >>> 0;
  for (let i = 0; i < size; i++) b[i] = (h + i * 7 + (i >> 12)) & 0xff;
  return b;
}

/** mkdir: a new directory inode with its "." and ".." block, linked into `parent`. */
function mkdir(f: Ext4, parent: Ext4Inode, name: string): Ext4Inode {
  const h = f.startHandle(addEntryCredits(f) + 16);
  try {
    const dir = newInode(h, f, parent, S_IFDIR | 0o755, { name: enc(name) });
    const bs = f.sb.blockSize;
    const m = ext4MapBlocks(h, f, dir, { lblk: 0, len: 1 }, GET_BLOCKS.CREATE);
    const bh = f.bcache.getblk(m.pblk);
    try {
      h.getCreateAccess(bh);
      const b = bh.data;
      b.fill(0);
      const tail = f.metadataCsum ? 12 : 0;
      setU32(b, 0, dir.ino); setU16(b, 4, 12); b[6] = 1; b[7] = FT.DIR; b[8] = 0x2e;
      setU32(b, 12, parent.ino); setU16(b, 16, bs - 12 - tail); b[18] = 2; b[19] = FT.DIR; b[20] = 0x2e; b[21] = 0x2e;
      if (tail) {
        setU16(b, bs - 12 + 4, 12); b[bs - 12 + 7] = 0xde;
        setU32(b, bs - 4, f.csum.dirBlock(f.inodeSeed(dir), b));
      }
      h.dirtyMetadata(bh);
    } finally {
      f.bcache.brelse(bh);
    }
    dir.linksCount = 2;
    setInodeSize(dir, bs);
    markInodeDirty(h, f, dir);
    addEntry(h, f, parent, enc(name), dir.ino, FT.DIR);
    incDirLinks(f, parent);
    markInodeDirty(h, f, parent);
    return dir;
  } finally {
    h.stop();
  }
}

/** A regular file with `data`, its blocks allocated in runs and written before the commit (as data=ordered orders them). */
function writeFile(f: Ext4, parent: Ext4Inode, name: string, data: Buffer): void {
  const bs = f.sb.blockSize;
  const h = f.startHandle(addEntryCredits(f) + 64);
  try {
    const file = newInode(h, f, parent, S_IFREG | 0o644);
    const blocks = Math.ceil(data.length / bs);
    for (let lblk = 0; lblk < blocks; ) {
      const m = ext4MapBlocks(h, f, file, { lblk, len: blocks - lblk }, GET_BLOCKS.CREATE);
      const chunk = Buffer.alloc(m.len * bs);
      data.copy(chunk, 0, lblk * bs, Math.min(data.length, (lblk + m.len) * bs));
      f.device.write(m.pblk * bs, chunk);
      lblk += m.len;
    }
    setInodeSize(file, data.length);
    markInodeDirty(h, f, file);
    addEntry(h, f, parent, enc(name), file.ino, FT.REG);
    f.iput(file);
  } finally {
    h.stop();
  }
}

/** The tree every test writes: 3 directories, 40 files of varied sizes, one of them holeless and long. */
function workload(f: Ext4): Map<string, Buffer> {
  const files = new Map<string, Buffer>();
  const root = f.iget(2);
  try {
    for (const dn of ["etc", "usr", "var"]) {
      const dir = mkdir(f, root, dn);
      for (let i = 0; i < 13; i++) {
        const p = `${dn}/f${i}`;
        const data = content(p, (i * 37_000 + 1) % 300_000);
        writeFile(f, dir, `f${i}`, data);
        files.set(p, data);
      }
      f.iput(dir);
    }
    const big = content("big", 5 << 20);
    writeFile(f, root, "big", big);
    files.set("big", big);
  } finally {
    f.iput(root);
  }
  return files;
}

function expectClean(img: string): void {
  const r = runSync("e2fsck", ["-fn", img], { okCodes: [0, 1, 2, 4, 8] });
  expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
}

function expectTree(readFile: (p: string) => Buffer, list: (p: string) => string[], files: Map<string, Buffer>): void {
  expect(list("").filter((n) => n !== "lost+found").sort()).toEqual(["big", "etc", "usr", "var"]);
  for (const dn of ["etc", "usr", "var"]) expect(list(dn).length).toBe(13);
  for (const [p, data] of files) expect(readFile(p).equals(data), p).toBe(true);
}

const variants: [string, string[]][] = [
  ["4k", []],
  ["1k-nocsum", ["-b", "1024", "-O", "^metadata_csum,^64bit"]],
];

d("files and directories written through the journal", () => {
  it.each(variants)("%s: a clean unmount leaves an e2fsck-clean image the kernel reads exactly", (name, args) => {
    const img = path.join(work, `clean-${name}.img`);
    runSync("mkfs.ext4", ["-q", "-F", ...args, img, "64M"], { env: mkfsEnv(work) });
    let files = new Map<string, Buffer>();
    const vol = mount(img);
    try {
      files = workload(fsOf(vol));
    } finally {
      vol.unmount();
    }
    expectClean(img);
    const again = mount(img, { readOnly: true });
    try {
      expectTree((p) => again.readFileSync(`/${p}`) as Buffer, (p) => again.readdirSync(`/${p}`) as string[], files);
    } finally {
      again.unmount();
    }
    if (loop.ok) {
      withLoopMountSync(img, (mnt) => {
        expectTree((p) => fs.readFileSync(path.join(mnt, p)), (p) => fs.readdirSync(path.join(mnt, p)), files);
      }, { readOnly: true });
    }
  });

  it("a crash after the commits replays, in the kernel and in ours, to the whole tree", () => {
    const img = path.join(work, "crash.img");
    runSync("mkfs.ext4", ["-q", "-F", img, "64M"], { env: mkfsEnv(work) });
    const base = new Uint8Array(fs.readFileSync(img));
    const rec = new RecordingDevice(new MemoryDevice(base.slice()));
    const vol = mount(rec);
    const f = fsOf(vol);
    const files = workload(f);
    f.commit(); // durable in the log, not yet checkpointed home; then the power goes
    const crashed = rec.crashImage(base, rec.events.length - 1);
    const crashImg = path.join(work, "crashed.img");
    fs.writeFileSync(crashImg, crashed);
    expect(runSync("dumpe2fs", ["-h", crashImg], { okCodes: [0, 1] }).stdout).toMatch(/needs_recovery/);
    // Ours: replay on mount.
    const ours = path.join(work, "ours.img");
    fs.copyFileSync(crashImg, ours);
    const replayed = mount(ours);
    try {
      expectTree((p) => replayed.readFileSync(`/${p}`) as Buffer, (p) => replayed.readdirSync(`/${p}`) as string[], files);
    } finally {
      replayed.unmount();
    }
    expectClean(ours);
    if (loop.ok) {
      const theirs = path.join(work, "theirs.img");
      fs.copyFileSync(crashImg, theirs);
      withLoopMountSync(theirs, (mnt) => {
        expectTree((p) => fs.readFileSync(path.join(mnt, p)), (p) => fs.readdirSync(path.join(mnt, p)), files);
      });
      expectClean(theirs);
    }
  });
});
