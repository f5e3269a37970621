// fscrypt-encrypted directories written by the kernel: without the key,
// names must list exactly as the kernel lists them (no-key names) and content
// reads must fail with ENOKEY, never return ciphertext.

import { execFileSync, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mount } from "../host/index.js";

function kernelReason(): string | null {
  if (process.getuid?.() !== 0) return "needs root for loop mounts";
  if (!fs.existsSync("/dev/loop-control")) return "no /dev/loop-control";
  for (const tool of ["e4crypt", "keyctl", "losetup"]) {
    if (spawnSync("sh", ["-c", `command -v ${tool}`]).status !== 0) return `${tool} is not installed`;
  }
  return null;
}

const reason = kernelReason();
if (reason) console.warn(`encrypted.test.ts: kernel cases skipped: ${reason}`);

describe.skipIf(reason !== null)("fscrypt directories written by the kernel", () => {
  let work: string;
  let image: string;
  let kernelNames: string[];
  let kernelLink: string;
  const sh = (cmd: string) => execFileSync("sh", ["-c", cmd], { encoding: "utf8" });

  beforeAll(() => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), "ext4wasm-enc-"));
    image = path.join(work, "enc.img");
    const mnt = path.join(work, "mnt");
    fs.mkdirSync(mnt);
    sh(`mkfs.ext4 -q -F -O encrypt -b 4096 ${image} 32M`);
    const loop = sh(`losetup --find --show ${image}`).trim();
    try {
      sh(`mount ${loop} ${mnt}`);
      try {
        fs.mkdirSync(path.join(mnt, "enc"));
        fs.mkdirSync(path.join(mnt, "big"));
        fs.writeFileSync(path.join(mnt, "plain.txt"), "not encrypted\n");
        // Key in a throwaway session keyring; files made while it is present.
        const script = [
          `e4crypt add_key -S 0x00112233445566778899aabbccddeeff ${mnt}/enc ${mnt}/big </dev/null`,
          `echo secret > ${mnt}/enc/short`,
          `head -c 100000 /dev/urandom > ${mnt}/enc/data.bin`,
          `mkdir ${mnt}/enc/sub && echo deep > ${mnt}/enc/sub/inner`,
          `ln -s /some/target ${mnt}/enc/link`,
          `touch ${mnt}/enc/$(printf 'L%.0s' $(seq 1 200))`,
          `for i in $(seq 1 300); do echo $i > ${mnt}/big/file-$i; done`,
        ].join(" && ");
        const r = spawnSync("keyctl", ["session", "-", "sh", "-c", `printf 'pass\\n' | ${script.replace("</dev/null", "")}`], { encoding: "utf8" });
        if (r.status !== 0) throw new Error(`setting up encryption failed: ${r.stderr}`);
      } finally {
        sh(`umount ${mnt}`);
      }
      // A fresh mount has no key: the kernel lists no-key names.
      sh(`mount -o ro ${loop} ${mnt}`);
      try {
        kernelNames = [
          ...fs.readdirSync(path.join(mnt, "enc")).map((n) => `enc/${n}`),
          ...fs.readdirSync(path.join(mnt, "big")).map((n) => `big/${n}`),
        ].sort();
        const link = fs.readdirSync(path.join(mnt, "enc")).find((n) => fs.lstatSync(path.join(mnt, "enc", n)).isSymbolicLink())!;
        kernelLink = fs.readlinkSync(path.join(mnt, "enc", link));
        expect(fs.lstatSync(path.join(mnt, "enc", link)).size).toBe(kernelLink.length);
      } finally {
        sh(`umount ${mnt}`);
      }
    } finally {
      sh(`losetup -d ${loop}`);
    }
  }, 120_000);

  afterAll(() => {
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  it("e2fsck finds the image clean", () => {
    expect(spawnSync("e2fsck", ["-fn", image]).status).toBe(0);
  });

  it("lists every encrypted name exactly as the kernel does without the key", () => {
    const vol = mount(image, { readOnly: true });
    try {
      const ours = [
        ...(vol.readdirSync("/enc") as string[]).map((n) => `enc/${n}`),
        ...(vol.readdirSync("/big") as string[]).map((n) => `big/${n}`),
      ].sort();
      expect(ours.length).toBe(305);
      expect(ours).toEqual(kernelNames);
    } finally {
      vol.unmount();
    }
  });

  it("stats encrypted entries, refuses their content with ENOKEY, reads plain files", () => {
    const vol = mount(image, { readOnly: true });
    try {
      let files = 0;
      for (const name of vol.readdirSync("/enc") as string[]) {
        const p = `/enc/${name}`;
        const st = vol.lstatSync(p);
        if (st.isFile()) {
          files++;
          if (st.size > 0) expect(() => vol.readFileSync(p)).toThrow(expect.objectContaining({ code: "ENOKEY" }));
        } else if (st.isSymbolicLink()) {
          expect(vol.readlinkSync(p)).toBe(kernelLink);
          expect(st.size).toBe(kernelLink.length);
          expect(() => vol.readFileSync(p)).toThrow(expect.objectContaining({ code: "ENOKEY" }));
        } else if (st.isDirectory()) {
          const inner = vol.readdirSync(p) as string[];
          expect(inner.length).toBe(1);
          expect(vol.lstatSync(`${p}/${inner[0]}`).size).toBe(5);
        }
      }
      expect(files).toBe(3);
      expect(vol.readFileSync("/plain.txt", "utf8")).toBe("not encrypted\n");
    } finally {
      vol.unmount();
    }
  });
});
