// `ext4wasm ln [-s] [-f] IMAGE TARGET LINK`: a hard link, or with -s a
// symbolic link holding TARGET as it is written.

import * as posix from "node:path/posix";
import { HELP_OPTION, IMAGE_OPTIONS, type CommandSpec, type ParsedArgs } from "../args.js";
import { EXIT_OK } from "../errors.js";
import { imageOptions } from "../image.js";
import type { Output } from "../output.js";
import { withWritableImage } from "../write-image.js";

export const spec: CommandSpec = {
  name: "ln",
  usage: "IMAGE TARGET LINK",
  summary: "Make LINK a hard link to TARGET (a path in the image), or with -s a symlink containing TARGET.",
  options: [
    { long: "symbolic", short: "s", help: "make a symbolic link (TARGET is stored as given, and need not exist)" },
    { long: "force", short: "f", help: "replace an existing LINK" },
    ...IMAGE_OPTIONS, HELP_OPTION,
  ],
  minArgs: 3,
  maxArgs: 3,
  notes: "If LINK is an existing directory the link is made inside it, named after TARGET.\n\nexample:\n  ext4wasm ln -s ../lib/systemd/systemd disk.img /sbin/init\n  ext4wasm ln disk.img /usr/bin/python3.12 /usr/bin/python3",
};

export function run(args: ParsedArgs, _out: Output): number {
  const [image, target, link] = args.positionals;
  const symbolic = args.flags.has("symbolic");
  withWritableImage(image, imageOptions(args), (vol) => {
    let at = link;
    if (vol.statSync(link, { throwIfNoEntry: false })?.isDirectory() && !vol.lstatSync(link).isSymbolicLink()) at = posix.join(link, posix.basename(target));
    if (args.flags.has("force")) {
      const old = vol.lstatSync(at, { throwIfNoEntry: false });
      if (old && !old.isDirectory()) vol.unlinkSync(at);
    }
    if (symbolic) vol.symlinkSync(target, at);
    else vol.linkSync(target, at);
  });
  return EXIT_OK;
}
