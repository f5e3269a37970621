// `ext4wasm cat IMAGE PATH`: a file's bytes to stdout, streamed in chunks so
// a file of any size needs only one chunk of memory: read with drop-behind
// through a small cache, so what was written out is not kept.

import { Ext4Error } from "../../errors.js";
import { HELP_OPTION, IMAGE_OPTIONS, type CommandSpec, type ParsedArgs } from "../args.js";
import { CliError, EXIT_OK } from "../errors.js";
import { fileTypeText, majorMinor } from "../format.js";
import { imageOptions, WALK_CACHE_SIZE, withImage } from "../image.js";
import { writeAllSync, type Output } from "../output.js";

export const spec: CommandSpec = {
  name: "cat",
  usage: "IMAGE PATH",
  summary: "Write a file's contents to stdout (symlinks are followed).",
  options: [...IMAGE_OPTIONS, HELP_OPTION],
  minArgs: 2,
  maxArgs: 2,
  notes: "example:\n  ext4wasm cat disk.img /etc/hostname\n  ext4wasm cat -o buffered_iomap disk.img /var/log/big.log | tail",
};

const CHUNK = 1 << 20;

export function run(args: ParsedArgs, out: Output): number {
  const path = args.positionals[1];
  withImage(args.positionals[0], { ...imageOptions(args), cacheSize: WALK_CACHE_SIZE }, (vol) => {
    const st = vol.statSync(path);
    if (st.isDirectory()) throw new Ext4Error("EISDIR", "illegal operation on a directory", { syscall: "read", path });
    // A device, FIFO or socket has no contents in the image: say what it is rather than print nothing.
    if (!st.isFile()) {
      const dev = st.isCharacterDevice() || st.isBlockDevice() ? ` ${majorMinor(st.rdev).major}, ${majorMinor(st.rdev).minor}` : "";
      throw new CliError("EINVAL", `'${path}' is a ${fileTypeText(st.mode)}${dev}: the image holds no data for it, cat`);
    }
    const fd = vol.openInode(vol.inodeOf(path, true), path, { dropBehind: true });
    try {
      out.flush();
      const buf = Buffer.allocUnsafe(CHUNK);
      for (;;) {
        const n = vol.readSync(fd, buf, 0, CHUNK, null);
        if (n === 0) break;
        writeAllSync(1, buf.subarray(0, n));
      }
    } finally {
      vol.closeSync(fd);
    }
  });
  return EXIT_OK;
}
