// `ext4wasm get IMAGE PATH DEST`: copy a file or a whole tree out of the image.

import * as fs from "node:fs";
import * as path from "node:path";
import { HELP_OPTION, IMAGE_OPTIONS, type CommandSpec, type ParsedArgs } from "../args.js";
import { EXIT_OK, warn } from "../errors.js";
import { TreeCopier } from "../get/copy-tree.js";
import { Progress } from "../get/progress.js";
import { imageOptions, withImage } from "../image.js";
import type { Output } from "../output.js";

export const spec: CommandSpec = {
  name: "get",
  usage: "IMAGE PATH DEST",
  summary: "Copy PATH (a file or a whole tree) out of the image to DEST, preserving what tar -p does.",
  options: [
    { long: "force", short: "f", help: "replace existing files at DEST (directories are always merged into)" },
    { long: "quiet", short: "q", help: "no progress line on stderr" },
    ...IMAGE_OPTIONS, HELP_OPTION,
  ],
  minArgs: 3,
  maxArgs: 3,
  notes: [
    "If DEST is an existing directory the copy goes inside it (DEST/<name of PATH>; for PATH / the",
    "contents of the image go straight into DEST). Kept: bytes, holes, all 12 mode bits, symlinks,",
    "hard links, FIFOs, device nodes (as root), owners (as root), user.* xattrs (via setfattr),",
    "atime/mtime to the microsecond (node's utimes limit), non-UTF-8 names byte for byte.",
    "",
    "example:",
    "  ext4wasm get disk.img /etc ./etc-copy",
    "  ext4wasm get -f disk.img / ./rootfs",
  ].join("\n"),
};

export function run(args: ParsedArgs, _out: Output): number {
  const [image, src, dest] = args.positionals;
  const destInfo = fs.statSync(dest, { throwIfNoEntry: false });
  // Like cp: into an existing directory, else the copy is DEST itself.
  const target = destInfo?.isDirectory() ? path.join(dest, path.posix.basename(src)) : dest;
  const progress = new Progress(args.flags.has("quiet"));
  const result = withImage(image, imageOptions(args), (vol) =>
    new TreeCopier(vol, {
      force: args.flags.has("force"),
      stagingParent: path.dirname(path.resolve(target)),
      progress,
    }).run(Buffer.from(src), Buffer.from(target)));
  for (const w of result.warnings) warn(w);
  return EXIT_OK;
}
