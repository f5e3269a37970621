// Directory entries added and removed through namei in existing blocks:
// linear directories with room made by removals, htree leaves with room,
// the dcache kept coherent, the name rules (ENAMETOOLONG, EEXIST, ENOKEY,
// casefold), and the directory link-count rules. Judged by e2fsck -fn, a
// fresh mount of ours and the kernel's loop mount against a model.

import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mount } from "../host/index.js";
import { lookup, readDir } from "../host/fs/dir.js";
import { addEntry, decDirLinks, deleteEntry, incDirLinks } from "../host/fs/namei.js";
import { FT } from "../host/format/dirent.js";
import { missingTools, runSync } from "./helpers/exec.js";
import { errorRecord, shaOutsideMountAndErrorFields, shaOutsideMountFields } from "./helpers/mount-fields.js";
import { loopMountSupport, withLoopMountSync } from "./helpers/kernel.js";
import {
  bytes, checkImage, dirShape, expectLive, fsOf, key, link, linkedTree, makeImage, ourNames, rng, unlink, withHandle,
} from "./helpers/namei.js";

const missing = missingTools(["mkfs.ext4", "e2fsck", "debugfs"], "e2fsprogs");
if (missing) console.log(`namei: skipped: ${missing}`);
const d = missing ? describe.skip : describe;

let work: string;
beforeAll(() => {
  if (!missing) work = fs.mkdtempSync(path.join(os.tmpdir(), "ext4wasm-namei-"));
});
afterAll(() => {
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

/** The image, but the superblock fields a read-write mount changes by itself. */
const sha = shaOutsideMountFields;

/** Removes `nRemove` random names, then adds `nAdd` new ones (links to pool files) into the room made. */
function churn(img: string, seed: number, nRemove: number, nAdd: number, newName: (i: number, r: () => number) => string) {
  const r = rng(seed);
  let model = new Map<string, number>();
  const gone: string[] = [];
  withHandle(img, (f, h, vol) => {
    const dirIno = vol.statSync("/d").ino;
    const pool = Array.from({ length: 16 }, (_, i) => vol.statSync(`/pool/p${i}`).ino);
    model = ourNames(f, dirIno);
    const names = [...model.keys()];
    for (let i = 0; i < nRemove; i++) {
      const k = names.splice(Math.floor(r() * names.length), 1)[0];
      expect(unlink(f, h, dirIno, bytes(k))).toBe(model.get(k));
      model.delete(k);
      gone.push(k);
    }
    for (let i = 0; i < nAdd; i++) {
      const k = newName(i, r);
      const target = pool[Math.floor(r() * pool.length)];
      link(f, h, dirIno, bytes(k), target);
      model.set(k, target);
    }
    expectLive(f, dirIno, model, gone);
  });
  return { model, gone };
}

d("linear directories", () => {
  it.each([
    ["4k-csum", 4096, ""],
    ["4k-nocsum", 4096, "^metadata_csum"],
    ["1k-csum", 1024, ""],
    ["1k-nocsum-nodirindex", 1024, "^metadata_csum,^dir_index"],
  ] as const)("names removed and added in the room made (%s): e2fsck clean, the same names for us and the kernel", (name, bs, features) => {
    const img = makeImage(work, { name: `lin-${name}`, blockSize: bs, features, tree: linkedTree(400) });
    const before = withHandle(img, (f, _h, vol) => dirShape(f, vol.statSync("/d").ino));
    expect(before.indexed).toBe(false);
    expect(before.blocks).toBeGreaterThan(1);
    const { model, gone } = churn(img, 1, 120, 100, (i) => `m${String(i).padStart(5, "0")}`);
    checkImage(img, "/d", model, gone);
    // Multi-block linear directories stay linear.
    withHandle(img, (f, _h, vol) => expect(dirShape(f, vol.statSync("/d").ino)).toEqual(before));
  });

  it("the first entry of a block is cleared in place; others merge into the entry before", () => {
    const img = makeImage(work, { name: "lin-first", blockSize: 1024, tree: linkedTree(200) });
    let model = new Map<string, number>();
    withHandle(img, (f, h, vol) => {
      const dirIno = vol.statSync("/d").ino;
      model = ourNames(f, dirIno);
      // The first name of block 1 and the one after it: both kinds of removal.
      const dir = f.inode(dirIno);
      const b = f.bcache.read(f.mapBlocks(dir, 1, 1).pblk);
      const first = key(b.subarray(8, 8 + b[6]));
      const secondOff = b[4] | (b[5] << 8);
      const second = key(b.subarray(secondOff + 8, secondOff + 8 + b[secondOff + 6]));
      for (const k of [second, first]) { unlink(f, h, dirIno, bytes(k)); model.delete(k); }
      const after = f.bcache.read(f.mapBlocks(dir, 1, 1).pblk);
      expect(after[0] | after[1] | after[2] | after[3]).toBe(0); // inode 0, record kept
      expect(after[6]).toBe(0);
      link(f, h, dirIno, bytes("again"), vol.statSync("/pool/p0").ino);
      model.set("again", vol.statSync("/pool/p0").ino);
    });
    checkImage(img, "/d", model, []);
  });
});

d("htree directories (indexed by e2fsck -fyD)", () => {
  const high = (i: number, r: () => number) => `h${i}-${String.fromCharCode(0xa0 + Math.floor(r() * 0x5f))}${String.fromCharCode(0x80 + (i % 0x7f))}z`;
  it.each([
    ["4k-halfmd4-csum", 4096, "", "half_md4", false],
    ["1k-tea-nocsum", 1024, "^metadata_csum", "tea", false],
    ["4k-halfmd4-unsigned", 4096, "", "half_md4", true],
    ["1k-tea-csum-unsigned", 1024, "", "tea", true],
  ] as const)("names removed from and added to leaves with room (%s), high-bit names hashed as the index's variant", (name, bs, features, hash, unsigned) => {
    const img = makeImage(work, { name: `dx-${name}`, blockSize: bs, features, hash, unsigned, index: true, tree: linkedTree(3000) });
    const shape = withHandle(img, (f, _h, vol) => {
      expect(f.sb.flags & 3).toBe(unsigned ? 2 : 1);
      return dirShape(f, vol.statSync("/d").ino);
    });
    expect(shape.indexed).toBe(true);
    expect(shape.levels).toBe(1);
    const { model, gone } = churn(img, 2, 400, 300, high);
    checkImage(img, "/d", model, gone);
  });

  it("a casefolded htree hashes the folded (lower-case) ASCII name", () => {
    const img = makeImage(work, { name: "dx-casefold", blockSize: 4096, features: "casefold", index: true, debugfs: ["sif /d flags 0x40080000"], tree: linkedTree(3000) });
    withHandle(img, (f, _h, vol) => expect(dirShape(f, vol.statSync("/d").ino).indexed).toBe(true));
    const { model, gone } = churn(img, 3, 300, 250, (i) => `Mixed-CASE-${i}`);
    checkImage(img, "/d", model, gone, "casefold");
  });
});

d("the dcache follows every change", () => {
  it("a listed directory and negative lookups see names added and removed at once", () => {
    const img = makeImage(work, { name: "dcache", blockSize: 4096, tree: linkedTree(100) });
    withHandle(img, (f, h, vol) => {
      const dirIno = vol.statSync("/d").ino;
      const dir = f.inode(dirIno);
      readDir(f, dir); // kept whole by the dcache
      expect(lookup(f, dir, bytes("fresh"))).toBe(0); // and a negative answer remembered
      const p0 = vol.statSync("/pool/p0").ino;
      link(f, h, dirIno, bytes("fresh"), p0);
      expect(lookup(f, dir, bytes("fresh"))).toBe(p0);
      expect(vol.statSync("/d/fresh").ino).toBe(p0);
      unlink(f, h, dirIno, bytes("n00007"));
      expect(lookup(f, dir, bytes("n00007"))).toBe(0);
      expect(() => vol.statSync("/d/n00007")).toThrow(expect.objectContaining({ code: "ENOENT" }));
      const names = readDir(f, dir).map((e) => key(e.name));
      expect(names).toContain("fresh");
      expect(names).not.toContain("n00007");
    });
  });
});

d("name rules", () => {
  it("ENAMETOOLONG, EEXIST, EINVAL, ENOENT and ENOTDIR leave the image as it was", () => {
    const img = makeImage(work, { name: "rules", blockSize: 4096, tree: linkedTree(20) });
    const before = sha(img);
    withHandle(img, (f, h, vol) => {
      const dir = f.inode(vol.statSync("/d").ino);
      const p0 = vol.statSync("/pool/p0").ino;
      const code = (fn: () => unknown) => { try { fn(); } catch (e) { return (e as { code?: string }).code; } return "none"; };
      expect(code(() => addEntry(h, f, dir, new Uint8Array(256).fill(0x61), p0, FT.REG))).toBe("ENAMETOOLONG");
      expect(code(() => addEntry(h, f, dir, bytes("n00003"), p0, FT.REG))).toBe("EEXIST");
      expect(code(() => addEntry(h, f, dir, bytes("."), p0, FT.REG))).toBe("EEXIST");
      expect(code(() => addEntry(h, f, dir, bytes(".."), p0, FT.REG))).toBe("EEXIST");
      expect(code(() => addEntry(h, f, dir, bytes("a/b"), p0, FT.REG))).toBe("EINVAL");
      expect(code(() => addEntry(h, f, dir, new Uint8Array(0), p0, FT.REG))).toBe("ENOENT");
      expect(code(() => addEntry(h, f, f.inode(p0), bytes("x"), p0, FT.REG))).toBe("ENOTDIR");
      expect(code(() => deleteEntry(h, f, dir, bytes("nothere")))).toBe("ENOENT");
      expect(code(() => deleteEntry(h, f, dir, bytes("..")))).toBe("EINVAL");
      expect(f.bcache.dirtyCount).toBe(0);
    });
    expect(sha(img)).toBe(before);
  });

  it("a 255-byte name is added and found (by us and the kernel)", () => {
    const img = makeImage(work, { name: "long", blockSize: 1024, tree: linkedTree(30) });
    let model = new Map<string, number>();
    withHandle(img, (f, h, vol) => {
      const dirIno = vol.statSync("/d").ino;
      model = ourNames(f, dirIno);
      for (let i = 0; i < 3; i++) unlink(f, h, dirIno, bytes(`n0000${i}`)), model.delete(`n0000${i}`);
      // The longest name there is: a 264-byte record.
      const k = "L".repeat(254) + "x";
      link(f, h, dirIno, bytes(k), vol.statSync("/pool/p1").ino);
      model.set(k, vol.statSync("/pool/p1").ino);
    });
    checkImage(img, "/d", model, []);
  });

  it("an encrypted directory takes no new names (ENOKEY)", () => {
    const img = makeImage(work, { name: "enc", blockSize: 4096, tree: linkedTree(5) });
    runSync("debugfs", ["-w", "-R", "sif /d flags 0x80800", img]);
    withHandle(img, (f, h, vol) => {
      const dir = f.inode(vol.statSync("/d").ino);
      expect(() => addEntry(h, f, dir, bytes("x"), vol.statSync("/pool/p0").ino, FT.REG)).toThrow(expect.objectContaining({ code: "ENOKEY" }));
      expect(f.bcache.dirtyCount).toBe(0);
    });
  });

  it("a casefolded directory takes ASCII names, found by the kernel in any case; others are EOPNOTSUPP", () => {
    const img = makeImage(work, {
      name: "cf", blockSize: 4096, features: "casefold",
      tree: (root) => { linkedTree(0)(root); fs.mkdirSync(path.join(root, "cf")); },
    });
    runSync("debugfs", ["-w", "-R", "sif /cf flags 0x40080000", img]);
    const model = new Map<string, number>();
    withHandle(img, (f, h, vol) => {
      const dirIno = vol.statSync("/cf").ino;
      const dir = f.inode(dirIno);
      const p0 = vol.statSync("/pool/p0").ino;
      link(f, h, dirIno, bytes("Hello.TXT"), p0);
      model.set("Hello.TXT", p0);
      expect(lookup(f, dir, bytes("hello.txt"))).toBe(p0);
      expect(() => addEntry(h, f, dir, bytes("HELLO.txt"), p0, FT.REG)).toThrow(expect.objectContaining({ code: "EEXIST" }));
      expect(() => addEntry(h, f, dir, new Uint8Array(Buffer.from("caf\u00e9")), p0, FT.REG)).toThrow(expect.objectContaining({ code: "EOPNOTSUPP" }));
    });
    checkImage(img, "/cf", model, [], "casefold");
  });
});

d("inline-data directories", () => {
  it("an inline directory that outgrows i_block becomes a block, then an htree", () => {
    const img = makeImage(work, { name: "inline-grow", blockSize: 1024, features: "inline_data", tree: linkedTree(2) });
    let model = new Map<string, number>();
    const gone: string[] = [];
    withHandle(img, (f, h, vol) => {
      const dirIno = vol.statSync("/d").ino;
      expect(f.inode(dirIno).flags & 0x10000000).toBe(0x10000000);
      model = ourNames(f, dirIno);
      const pool = Array.from({ length: 16 }, (_, i) => vol.statSync(`/pool/p${i}`).ino);
      for (let i = 0; i < 400; i++) {
        link(f, h, dirIno, bytes(`grown-${i}`), pool[i % 16]);
        model.set(`grown-${i}`, pool[i % 16]);
        // i_block, then system.data grown into the inode's free space (ext4_update_inline_dir), then a block.
        if (i === 3) expect(f.inode(dirIno).flags & 0x10000000).toBe(0x10000000);
        if (i === 12) expect(f.inode(dirIno).flags & 0x10000000).toBe(0);
        if (i % 7 === 3) { const k = `grown-${i - 2}`; unlink(f, h, dirIno, bytes(k)); model.delete(k); gone.push(k); }
      }
      expectLive(f, dirIno, model, gone);
      expect(dirShape(f, dirIno).indexed).toBe(true);
    });
    checkImage(img, "/d", model, gone);
  });

  it("a kernel-made inline directory with entries in system.data: names there removed and added, then converted", () => {
    const loop = loopMountSupport();
    if (!loop.ok) { console.log(`namei: kernel-made inline directory skipped: ${loop.reason}`); return; }
    // Big inodes: the kernel grows system.data there (ext4_update_inline_dir) rather than converting at once.
    const img = makeImage(work, { name: "inline-kernel", blockSize: 4096, inodeSize: 1024, features: "inline_data", tree: linkedTree(0) });
    withLoopMountSync(img, (mnt) => {
      fs.mkdirSync(path.join(mnt, "k"));
      for (let i = 0; i < 8; i++) fs.linkSync(path.join(mnt, "pool", `p${i}`), path.join(mnt, "k", `kernel-name-${i}`));
    });
    expect(runSync("debugfs", ["-R", "ea_list /k", img]).stdout).toMatch(/system\.data \(([1-9]\d*)\)/);
    let model = new Map<string, number>();
    const gone: string[] = [];
    withHandle(img, (f, h, vol) => {
      const dirIno = vol.statSync("/k").ino;
      expect(f.inode(dirIno).flags & 0x10000000).toBe(0x10000000);
      model = ourNames(f, dirIno);
      for (const k of ["kernel-name-7", "kernel-name-1"]) { unlink(f, h, dirIno, bytes(k)); model.delete(k); gone.push(k); }
      const p9 = vol.statSync("/pool/p9").ino;
      link(f, h, dirIno, bytes("ours-0"), p9);
      model.set("ours-0", p9);
      expect(f.inode(dirIno).flags & 0x10000000).toBe(0x10000000);
      expectLive(f, dirIno, model, gone);
    });
    checkImage(img, "/k", model, gone);
    withHandle(img, (f, h, vol) => {
      const dirIno = vol.statSync("/k").ino;
      const p9 = vol.statSync("/pool/p9").ino;
      for (let i = 1; i < 60; i++) { link(f, h, dirIno, bytes(`ours-${i}`), p9); model.set(`ours-${i}`, p9); }
      expect(f.inode(dirIno).flags & 0x10000000).toBe(0);
    });
    checkImage(img, "/k", model, gone);
  });

  it("names added to and removed from i_block; one that does not fit converts the directory to a block", () => {
    const img = makeImage(work, { name: "inline", blockSize: 4096, features: "inline_data", tree: linkedTree(2) });
    const model = new Map<string, number>();
    withHandle(img, (f, h, vol) => {
      const dirIno = vol.statSync("/d").ino;
      const dir = f.inode(dirIno);
      expect(dir.flags & 0x10000000).toBe(0x10000000);
      for (const [k, v] of ourNames(f, dirIno)) model.set(k, v);
      expect(model.size).toBe(2);
      const p3 = vol.statSync("/pool/p3").ino;
      link(f, h, dirIno, bytes("abc"), p3);
      model.set("abc", p3);
      unlink(f, h, dirIno, bytes("n00000"));
      model.delete("n00000");
      link(f, h, dirIno, bytes("n0"), p3);
      model.set("n0", p3);
      expectLive(f, dirIno, model, ["n00000"]);
      expect(dir.flags & 0x10000000).toBe(0x10000000);
      // No room left in i_block: system.data (empty) grows into the inode's 68 free bytes and takes the name.
      link(f, h, dirIno, bytes("x".repeat(40)), p3);
      model.set("x".repeat(40), p3);
      expect(f.inode(dirIno).flags & 0x10080000).toBe(0x10000000);
      expect(f.inode(dirIno).size).toBe(128);
      // No room there either: the directory is converted to a block.
      link(f, h, dirIno, bytes("y".repeat(40)), p3);
      model.set("y".repeat(40), p3);
      expect(f.inode(dirIno).flags & 0x10080000).toBe(0x80000);
      expect(f.inode(dirIno).size).toBe(4096);
      expectLive(f, dirIno, model, ["n00000"]);
    });
    checkImage(img, "/d", model, ["n00000"]);
  });
});

d("damaged directories", () => {
  /** Writes `bytes` at `off` of logical block `lblk` of /d, straight into the image. */
  function poke(img: string, lblk: number, off: number, bytesIn: number[]): void {
    const vol = mount(img, { readOnly: true });
    let pos = 0;
    try {
      const f = fsOf(vol);
      const dir = f.inode(vol.statSync("/d").ino);
      pos = f.mapBlocks(dir, lblk, 1).pblk * f.sb.blockSize + off;
    } finally {
      vol.unmount();
    }
    const fd = fs.openSync(img, "r+");
    try { fs.writeSync(fd, Buffer.from(bytesIn), 0, bytesIn.length, pos); } finally { fs.closeSync(fd); }
  }

  function expectCorrupted(img: string, name: string): void {
    const before = shaOutsideMountAndErrorFields(img);
    withHandle(img, (f, h, vol) => {
      const dir = f.inode(vol.statSync("/d").ino);
      const p0 = vol.statSync("/pool/p0").ino;
      expect(() => addEntry(h, f, dir, bytes(name), p0, FT.REG)).toThrow(expect.objectContaining({ code: "EFSCORRUPTED" }));
      expect(() => deleteEntry(h, f, dir, bytes("n00005"))).toThrow(expect.objectContaining({ code: "EFSCORRUPTED" }));
      expect(f.bcache.dirtyCount).toBe(0);
    }, "errors=continue"); // both operations meet the damage: the volume must stay writable after the first
    // Nothing but the two ext4_errors' record reached the image.
    expect(shaOutsideMountAndErrorFields(img)).toBe(before);
    expect(errorRecord(img)).toEqual({ errorFs: true, count: 2 });
  }

  it("a bad rec_len in a linear block is EFSCORRUPTED for adds and removes, and nothing is written", () => {
    const img = makeImage(work, { name: "bad-reclen", blockSize: 1024, features: "^metadata_csum", tree: linkedTree(20) });
    poke(img, 0, 24 + 4, [5, 0]); // the first name's record: 5 bytes
    expectCorrupted(img, "new-name");
  });

  it("an htree root whose checksum fails is EFSCORRUPTED, and nothing is written", () => {
    const img = makeImage(work, { name: "bad-dxcsum", blockSize: 1024, index: true, tree: linkedTree(600) });
    poke(img, 0, 40, [0xff, 0xff, 0xff, 0x7f]); // an index hash: the dx_tail checksum no longer matches
    expectCorrupted(img, "new-name");
  });

  it("an unusable index without checksums is dropped and the name added linearly (ERR_BAD_DX_DIR, dx_fallback)", () => {
    const img = makeImage(work, { name: "bad-dxlimit", blockSize: 1024, features: "^metadata_csum", index: true, tree: linkedTree(600) });
    poke(img, 0, 32, [5, 0]); // the root's limit
    let model = new Map<string, number>();
    withHandle(img, (f, h, vol) => {
      const dirIno = vol.statSync("/d").ino;
      model = ourNames(f, dirIno);
      const p0 = vol.statSync("/pool/p0").ino;
      link(f, h, dirIno, bytes("after-fallback"), p0);
      model.set("after-fallback", p0);
      expect(f.inode(dirIno).flags & 0x1000).toBe(0);
    });
    checkImage(img, "/d", model);
  });

  it("a leaf whose checksum fails is EFSCORRUPTED, and nothing is written", () => {
    const img = makeImage(work, { name: "bad-leafcsum", blockSize: 1024, tree: linkedTree(20) });
    poke(img, 0, 30, [0x7a]); // a byte of the first name
    expectCorrupted(img, "new-name");
  });
});

d("directory link counts (ext4_inc_count / ext4_dec_count)", () => {
  it("EMLINK at 65000 in a linear directory; an indexed one with dir_nlink goes to 1 and stays there", () => {
    const img = makeImage(work, { name: "nlink", blockSize: 4096, index: true, tree: (root) => { linkedTree(3000)(root); fs.mkdirSync(path.join(root, "small")); } });
    const vol = mount(img, { readOnly: true });
    try {
      const f = fsOf(vol);
      const small = { ...f.inode(vol.statSync("/small").ino) };
      const big = { ...f.inode(vol.statSync("/d").ino) };
      expect(big.flags & 0x1000).toBe(0x1000);
      small.linksCount = 64999;
      incDirLinks(f, small);
      expect(small.linksCount).toBe(65000);
      expect(() => incDirLinks(f, small)).toThrow(expect.objectContaining({ code: "EMLINK" }));
      big.linksCount = 64999;
      incDirLinks(f, big);
      expect(big.linksCount).toBe(65000);
      incDirLinks(f, big);
      expect(big.linksCount).toBe(1);
      incDirLinks(f, big);
      expect(big.linksCount).toBe(1);
      decDirLinks(f, big);
      expect(big.linksCount).toBe(1);
      big.linksCount = 2;
      decDirLinks(f, big);
      expect(big.linksCount).toBe(2);
      big.linksCount = 3;
      decDirLinks(f, big);
      expect(big.linksCount).toBe(2);
      const file = { ...f.inode(vol.statSync("/pool/p0").ino) };
      const links = file.linksCount;
      decDirLinks(f, file);
      expect(file.linksCount).toBe(links - 1);
    } finally {
      vol.unmount();
    }
  });

  it("without dir_nlink an indexed directory stops at 65000 too", () => {
    const img = makeImage(work, { name: "nlink-off", blockSize: 4096, features: "^dir_nlink", index: true, tree: linkedTree(3000) });
    const vol = mount(img, { readOnly: true });
    try {
      const f = fsOf(vol);
      const big = { ...f.inode(vol.statSync("/d").ino) };
      expect(big.flags & 0x1000).toBe(0x1000);
      big.linksCount = 65000;
      expect(() => incDirLinks(f, big)).toThrow(expect.objectContaining({ code: "EMLINK" }));
    } finally {
      vol.unmount();
    }
  });
});
