// `ext4wasm mkdir [-p] [-m MODE] IMAGE PATH...`: make directories in the image.

import { HELP_OPTION, IMAGE_OPTIONS, type CommandSpec, type ParsedArgs } from "../args.js";
import { EXIT_OK } from "../errors.js";
import { imageOptions } from "../image.js";
import { applyMode } from "../mode-arg.js";
import type { Output } from "../output.js";
import { withWritableImage } from "../write-image.js";

export const spec: CommandSpec = {
  name: "mkdir",
  usage: "IMAGE PATH...",
  summary: "Make directories in the image.",
  options: [
    { long: "parents", short: "p", help: "make missing parents too; no error if PATH exists as a directory" },
    { long: "mode", short: "m", value: "MODE", help: "permissions of the new directories (octal or symbolic; default 0755)" },
    ...IMAGE_OPTIONS, HELP_OPTION,
  ],
  minArgs: 2,
  maxArgs: Infinity,
  notes: "example:\n  ext4wasm mkdir disk.img /srv\n  ext4wasm mkdir -p -m 0700 disk.img /root/.ssh",
};

export function run(args: ParsedArgs, _out: Output): number {
  const [image, ...paths] = args.positionals;
  const m = args.flags.get("mode");
  const mode = typeof m === "string" ? applyMode(m, 0o040755) : 0o755;
  withWritableImage(image, imageOptions(args), (vol) => {
    for (const p of paths) {
      vol.mkdirSync(p, { recursive: args.flags.has("parents"), mode });
      // mkdir(2) masks the mode with the umask; the image has none, but setuid/setgid/sticky need an explicit chmod, as mkdir(1) -m does.
      if (typeof m === "string") vol.chmodSync(p, mode);
    }
  });
  return EXIT_OK;
}
