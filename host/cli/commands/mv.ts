// `ext4wasm mv IMAGE SRC DST`: rename within the image, as mv(1): into DST
// when it is a directory, else over DST (an existing file is replaced).

import * as posix from "node:path/posix";
import { HELP_OPTION, IMAGE_OPTIONS, type CommandSpec, type ParsedArgs } from "../args.js";
import { EXIT_OK } from "../errors.js";
import { imageOptions } from "../image.js";
import type { Output } from "../output.js";
import { withWritableImage } from "../write-image.js";

export const spec: CommandSpec = {
  name: "mv",
  usage: "IMAGE SRC DST",
  summary: "Move or rename SRC to DST inside the image (into DST if it is a directory).",
  options: [
    { long: "no-clobber", short: "n", help: "do not replace an existing DST" },
    { long: "no-target-directory", short: "T", help: "treat DST as the new name even if it is a directory" },
    ...IMAGE_OPTIONS, HELP_OPTION,
  ],
  minArgs: 3,
  maxArgs: 3,
  notes: "The move is one rename(2): atomic, and an existing file at DST is replaced in the same step.\n\nexample:\n  ext4wasm mv disk.img /etc/hosts.new /etc/hosts",
};

export function run(args: ParsedArgs, _out: Output): number {
  const [image, src, dst] = args.positionals;
  withWritableImage(image, imageOptions(args), (vol) => {
    let target = dst;
    if (!args.flags.has("no-target-directory") && vol.statSync(dst, { throwIfNoEntry: false })?.isDirectory()) {
      target = posix.join(dst, posix.basename(src));
    }
    if (args.flags.has("no-clobber") && vol.lstatSync(target, { throwIfNoEntry: false })) return;
    vol.renameSync(src, target);
  });
  return EXIT_OK;
}
