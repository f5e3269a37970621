// mtime and ctime of writes as ext4 sets them since Linux 6.13 (multigrain
// timestamps, Documentation/filesystems/multigrain-ts.rst): writes stamp the
// coarse clock, so a stream of writes dirties the inode once a tick rather
// than once a call; a stat in between makes the next write's change visible;
// and a coarse stamp never orders a file before one changed earlier.

import { describe, expect, it } from "vitest";
import { MemoryDevice, mkfs, mount } from "../host/index.js";
import type { Ext4Inode } from "../host/fs/inode.js";
import type { BigIntStats } from "../host/vfs/stats.js";
import type { Volume } from "../host/vfs/volume.js";

const ns = (t: { sec: number; nsec: number }) => BigInt(t.sec) * 1_000_000_000n + BigInt(t.nsec);

function withVolume(fn: (vol: Volume) => void): void {
  const image = new Uint8Array(32 << 20);
  mkfs(new MemoryDevice(image), { blockSize: 4096 });
  const vol = mount(image, { cacheSize: 8 << 20 });
  try {
    fn(vol);
  } finally {
    vol.unmount();
  }
}

const inodeOf = (vol: Volume, fd: number): Ext4Inode => (vol as unknown as { files: { get(fd: number): { inode: Ext4Inode } } }).files.get(fd).inode;

describe("write timestamps (multigrain)", () => {
  it("a stream of writes nobody stats changes mtime at most once a 4 ms tick, not once a call", () => {
    withVolume((vol) => {
      const fd = vol.openSync("/f", "w");
      const inode = inodeOf(vol, fd);
      const one = new Uint8Array(1);
      const t0 = process.hrtime.bigint();
      vol.writeSync(fd, one);
      let changes = 0;
      let last = ns(inode.mtime);
      for (let i = 0; i < 200; i++) {
        vol.writeSync(fd, one);
        if (ns(inode.mtime) !== last) { changes++; last = ns(inode.mtime); }
      }
      // Each change is a tick boundary passed since the first write (fine-grained stamps would change 200 times).
      const ticks = Number((process.hrtime.bigint() - t0) / 4_000_000n);
      expect(changes).toBeLessThanOrEqual(ticks + 1);
      expect(ns(inode.ctime)).toBe(ns(inode.mtime));
      vol.closeSync(fd);
    });
  });

  it("after a stat, the next write shows a later mtime and ctime, within the same tick too", () => {
    withVolume((vol) => {
      const fd = vol.openSync("/f", "w");
      for (let i = 0; i < 50; i++) {
        vol.writeSync(fd, "x");
        const a = vol.fstatSync(fd, { bigint: true }) as BigIntStats;
        vol.writeSync(fd, "y");
        const b = vol.fstatSync(fd, { bigint: true }) as BigIntStats;
        expect(b.mtimeNs).toBeGreaterThan(a.mtimeNs);
        expect(b.ctimeNs).toBeGreaterThan(a.ctimeNs);
      }
      vol.closeSync(fd);
    });
  });

  it("a write after another file's fine-grained change never looks older than it (the floor)", () => {
    withVolume((vol) => {
      vol.writeFileSync("/b", "b");
      for (let i = 0; i < 20; i++) {
        vol.writeFileSync(`/a${i}`, ""); // created: its ctime from the fine clock
        const a = vol.statSync(`/a${i}`, { bigint: true });
        const fd = vol.openSync("/b", "r+");
        vol.writeSync(fd, "b");
        vol.closeSync(fd);
        expect(vol.statSync("/b", { bigint: true }).mtimeNs).toBeGreaterThanOrEqual(a.ctimeNs);
      }
    });
  });
});
