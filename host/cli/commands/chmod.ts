// `ext4wasm chmod [-R] IMAGE MODE PATH...`: change permission bits.

import { HELP_OPTION, IMAGE_OPTIONS, type CommandSpec, type ParsedArgs } from "../args.js";
import { EXIT_OK } from "../errors.js";
import { imageOptions } from "../image.js";
import { applyMode } from "../mode-arg.js";
import type { Output } from "../output.js";
import { walkTree } from "../walk-image.js";
import { withWritableImage } from "../write-image.js";

export const spec: CommandSpec = {
  name: "chmod",
  usage: "IMAGE MODE PATH...",
  summary: "Change the permission bits of files in the image (MODE octal, or symbolic as chmod(1): u+x, go-w, a=rX).",
  options: [
    { long: "recursive", short: "R", help: "change whole trees (symlinks inside are not followed)" },
    ...IMAGE_OPTIONS, HELP_OPTION,
  ],
  minArgs: 3,
  maxArgs: Infinity,
  notes: "A symlink named on the command line is followed, as chmod(1); the bits of symlinks themselves never change.\n\nexample:\n  ext4wasm chmod disk.img 4755 /usr/bin/sudo\n  ext4wasm chmod -R disk.img go-rwx /root",
};

export function run(args: ParsedArgs, _out: Output): number {
  const [image, mode, ...paths] = args.positionals;
  applyMode(mode, 0o100644); // a bad MODE is a usage error before the image is touched
  withWritableImage(image, imageOptions(args), (vol) => {
    for (const p of paths) {
      const change = (path: Buffer) => {
        const st = vol.lstatSync(path);
        if (st.isSymbolicLink()) return;
        vol.chmodSync(path, applyMode(mode, st.mode));
      };
      const top = vol.statSync(p); // follows a symlink; ENOENT here names p
      vol.chmodSync(p, applyMode(mode, top.mode));
      if (args.flags.has("recursive") && top.isDirectory()) walkTree(vol, vol.realpathSync(p) as string, change);
    }
  });
  return EXIT_OK;
}
