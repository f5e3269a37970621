// The Linux kernel as a peer: the same image loop-mounted read-only, the same
// files read with node:fs readSync in the same request sizes. Cold passes drop
// the kernel's page cache first (sync -f; echo 3 > /proc/sys/vm/drop_caches). The
// image file lives in tmpfs (/dev/shm) where there is one, so that, like our
// memory device and the series' memory-backed VM, "ondisk" data comes from RAM
// (drop_caches does not drop tmpfs pages). Needs root and /dev/loop-control;
// otherwise the peer is absent, with a reason.

import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { readPass } from "./measure.mjs";

export function kernelPeer(image) {
  if (process.getuid?.() !== 0) return { available: false, reason: "the kernel peer needs root (loop mount)" };
  if (!fs.existsSync("/dev/loop-control")) return { available: false, reason: "the kernel peer needs /dev/loop-control" };
  const base = fs.existsSync("/dev/shm") ? "/dev/shm" : os.tmpdir();
  const dir = fs.mkdtempSync(path.join(base, "ext4wasm-bench-kernel-"));
  const file = path.join(dir, "image.ext4");
  const mnt = path.join(dir, "mnt");
  fs.writeFileSync(file, image);
  fs.mkdirSync(mnt);
  let loop = "";
  let mounted = false;
  const close = () => {
    try { if (mounted) execFileSync("umount", [mnt]); } finally {
      try { if (loop) execFileSync("losetup", ["-d", loop]); } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    }
  };
  try {
    loop = execFileSync("losetup", ["--find", "--show", "--read-only", file], { encoding: "utf8" }).trim();
    execFileSync("mount", ["-o", "ro,noatime", loop, mnt]);
    mounted = true;
  } catch (e) {
    close();
    return { available: false, reason: `the kernel peer could not loop-mount the image: ${e.message.split("\n")[0]}` };
  }
  return {
    available: true,
    backing: base === "/dev/shm" ? "tmpfs" : "disk",
    /** One sequential pass through node:fs, timed like the engine's (same loop, same buffer). */
    readPass(name, buf, bs, hash = false) {
      return readPass(fs, path.join(mnt, name), buf, bs, hash);
    },
    dropCaches() {
      // syncfs of this mount only (a global sync waits on every filesystem of the machine, stuck ones too).
      execFileSync("sync", ["-f", mnt]);
      fs.writeFileSync("/proc/sys/vm/drop_caches", "3");
    },
    close,
  };
}
