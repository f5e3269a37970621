// Builds the benchmark image in memory: a temp dir holding one dense file of
// pseudo-random bytes and one sparse file (all hole) of the same size goes
// through `mkfs.ext4 -d`; the image is read into a Uint8Array and the temp
// dir removed. Returns the image bytes, the dense data (memcpy source and
// reference hash) and the hashes every read pass must reproduce.

import { spawnSync } from "node:child_process";
import { createHash, randomFillSync } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

export const DATA_FILE = "/data.bin";
export const HOLE_FILE = "/hole.bin";

function run(cmd, args, okCodes = [0]) {
  const r = spawnSync(cmd, args, { encoding: "utf8" });
  if (r.error) throw new Error(`${cmd}: ${r.error.message}`);
  if (!okCodes.includes(r.status)) throw new Error(`${cmd} ${args.join(" ")} exited ${r.status}\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

/** sha256 of `size` zero bytes, hashed in 1 MiB steps. */
function zeroHash(size) {
  const h = createHash("sha256");
  const zeros = new Uint8Array(1 << 20);
  for (let left = size; left > 0; left -= zeros.length) h.update(zeros.subarray(0, Math.min(left, zeros.length)));
  return h.digest("hex");
}

export function buildImage({ fileBytes, imageBytes }) {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "ext4wasm-bench-"));
  try {
    const src = path.join(tmp, "src");
    fs.mkdirSync(src);
    // Random bytes: no all-zero block for mkfs to turn into a hole.
    const data = Buffer.allocUnsafe(fileBytes);
    for (let off = 0; off < fileBytes; off += 1 << 20) randomFillSync(data, off, Math.min(1 << 20, fileBytes - off));
    fs.writeFileSync(path.join(src, DATA_FILE.slice(1)), data);
    const holeFd = fs.openSync(path.join(src, HOLE_FILE.slice(1)), "w");
    fs.ftruncateSync(holeFd, fileBytes);
    fs.closeSync(holeFd);

    const imagePath = path.join(tmp, "bench.img");
    fs.closeSync(fs.openSync(imagePath, "w"));
    fs.truncateSync(imagePath, imageBytes);
    // -b 4096: mke2fs.conf may otherwise pick another block size for a small fs.
    run("mkfs.ext4", ["-q", "-F", "-b", "4096", "-d", src, imagePath]);
    run("e2fsck", ["-fn", imagePath]);
    const stat = run("debugfs", ["-R", `stat ${DATA_FILE}`, imagePath]);
    const holeStat = run("debugfs", ["-R", `stat ${HOLE_FILE}`, imagePath]);
    const image = new Uint8Array(fs.readFileSync(imagePath));
    return {
      image,
      data,
      expected: {
        [DATA_FILE]: createHash("sha256").update(data).digest("hex"),
        [HOLE_FILE]: zeroHash(fileBytes),
      },
      layout: {
        dataExtents: extentCount(stat),
        holeBlocks: Number(/Blockcount:\s*(\d+)/.exec(holeStat)?.[1] ?? NaN),
      },
    };
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

/** Number of extents debugfs lists for a file ("(0-32767):1234-34001, ..."). */
function extentCount(debugfsStat) {
  const section = debugfsStat.split(/EXTENTS:\s*/)[1] ?? "";
  return (section.match(/\(\d+(?:-\d+)?\):\d+/g) ?? []).length;
}
