// `ext4wasm rm [-r] [-f] IMAGE PATH...`: remove files, or whole trees with -r.

import { Ext4Error } from "../../errors.js";
import { HELP_OPTION, IMAGE_OPTIONS, type CommandSpec, type ParsedArgs } from "../args.js";
import { CliError, EXIT_OK } from "../errors.js";
import { imageOptions } from "../image.js";
import type { Output } from "../output.js";
import { withWritableImage } from "../write-image.js";

export const spec: CommandSpec = {
  name: "rm",
  usage: "IMAGE PATH...",
  summary: "Remove files (and directories with -r) from the image.",
  options: [
    { long: "recursive", short: "r", help: "remove directories and everything in them" },
    { long: "force", short: "f", help: "no error for a PATH that does not exist" },
    { long: "dir", short: "d", help: "remove empty directories" },
    ...IMAGE_OPTIONS, HELP_OPTION,
  ],
  minArgs: 2,
  maxArgs: Infinity,
  notes: "Like rm(1), a symlink is removed, never what it points to, and '/' is never removed.\n\nexample:\n  ext4wasm rm disk.img /etc/machine-id\n  ext4wasm rm -rf disk.img /var/cache/apt",
};

export function run(args: ParsedArgs, _out: Output): number {
  const [image, ...paths] = args.positionals;
  const recursive = args.flags.has("recursive");
  const force = args.flags.has("force");
  withWritableImage(image, imageOptions(args), (vol) => {
    for (const p of paths) {
      const st = vol.lstatSync(p, { throwIfNoEntry: false });
      if (!st) {
        if (force) continue;
        throw new Ext4Error("ENOENT", "no such file or directory", { syscall: "rm", path: p });
      }
      if (st.isDirectory()) {
        if (vol.realpathSync(p) === "/") throw new CliError("EPERM", `refusing to remove '/' (the image's root), rm '${p}'`);
        if (recursive) vol.rmSync(p, { recursive: true, force });
        else if (args.flags.has("dir")) vol.rmdirSync(p);
        else throw new Ext4Error("EISDIR", "is a directory (use -r)", { syscall: "rm", path: p });
      } else {
        vol.unlinkSync(p);
      }
    }
  });
  return EXIT_OK;
}
