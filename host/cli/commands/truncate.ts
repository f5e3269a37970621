// `ext4wasm truncate IMAGE PATH SIZE`: set a file's size, as truncate(1) -s.

import { HELP_OPTION, IMAGE_OPTIONS, type CommandSpec, type ParsedArgs } from "../args.js";
import { EXIT_OK } from "../errors.js";
import { imageOptions } from "../image.js";
import type { Output } from "../output.js";
import { parseSizeArg, resolveSize } from "../size-arg.js";
import { withWritableImage } from "../write-image.js";

export const spec: CommandSpec = {
  name: "truncate",
  usage: "IMAGE PATH SIZE",
  summary: "Shrink or extend a file to SIZE bytes (a missing file is created, unless -c).",
  options: [
    { long: "no-create", short: "c", help: "do not create a missing file" },
    ...IMAGE_OPTIONS, HELP_OPTION,
  ],
  minArgs: 3,
  maxArgs: 3,
  notes: [
    "SIZE is bytes with an optional K, M, G, T suffix (powers of 1024; KB, MB, ... powers of 1000),",
    "or relative to the current size: +N grows, -N shrinks, <N at most, >N at least, /N and %N",
    "round down and up to a multiple of N. Growing leaves a hole; shrinking frees the blocks.",
    "",
    "example:",
    "  ext4wasm truncate disk.img /var/log/syslog 0",
    "  ext4wasm truncate disk.img /swapfile 1G",
  ].join("\n"),
};

export function run(args: ParsedArgs, _out: Output): number {
  const [image, path, sizeText] = args.positionals;
  const size = parseSizeArg(sizeText);
  withWritableImage(image, imageOptions(args), (vol) => {
    const st = vol.statSync(path, { throwIfNoEntry: args.flags.has("no-create") });
    if (!st && args.flags.has("no-create")) return;
    if (!st) vol.closeSync(vol.openSync(path, "a"));
    vol.truncateSync(path, resolveSize(size, st ? st.size : 0));
  });
  return EXIT_OK;
}
