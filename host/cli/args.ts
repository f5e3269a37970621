// Command-line parsing for one subcommand: long options (--name, --name=value),
// bundled short flags (-lR), short options with a value (-o OPTS, -oOPTS) and
// "--" to end options. Anything unknown is a usage error (exit status 2).

import { UsageError } from "./errors.js";

export interface OptionSpec {
  /** Long name without dashes: "offset". */
  long: string;
  /** One-letter alias: "o". */
  short?: string;
  /** Takes a value (-o OPTS); otherwise a boolean flag. */
  value?: string;
  help: string;
}

export interface CommandSpec {
  name: string;
  /** Positional arguments as shown in the usage line: "IMAGE [PATH]". */
  usage: string;
  summary: string;
  options: OptionSpec[];
  /** Required and optional positional counts. */
  minArgs: number;
  maxArgs: number;
  /** Extra help text after the option list (examples, notes). */
  notes?: string;
}

export interface ParsedArgs {
  flags: Map<string, string | true>;
  positionals: string[];
}

export function parseArgs(spec: CommandSpec, argv: string[]): ParsedArgs {
  const flags = new Map<string, string | true>();
  const positionals: string[] = [];
  const byLong = new Map(spec.options.map((o) => [o.long, o]));
  const byShort = new Map(spec.options.filter((o) => o.short).map((o) => [o.short!, o]));
  const bad = (why: string) => new UsageError(`${spec.name}: ${why}`, spec.name);

  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--") {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (arg.startsWith("--")) {
      const eq = arg.indexOf("=");
      const name = eq < 0 ? arg.slice(2) : arg.slice(2, eq);
      const opt = byLong.get(name);
      if (!opt) throw bad(`unknown option '--${name}'`);
      if (opt.value) {
        const v = eq >= 0 ? arg.slice(eq + 1) : argv[++i];
        if (v === undefined) throw bad(`option '--${name}' needs a value (${opt.value})`);
        flags.set(opt.long, v);
      } else {
        if (eq >= 0) throw bad(`option '--${name}' takes no value`);
        flags.set(opt.long, true);
      }
      continue;
    }
    // "-1M" is a value (truncate's relative SIZE), never an option: no option is a digit.
    if (arg.startsWith("-") && arg.length > 1 && !/^-\d/.test(arg)) {
      for (let j = 1; j < arg.length; j++) {
        const opt = byShort.get(arg[j]);
        if (!opt) throw bad(`unknown option '-${arg[j]}'`);
        if (opt.value) {
          const rest = arg.slice(j + 1);
          const v = rest.length > 0 ? rest : argv[++i];
          if (v === undefined) throw bad(`option '-${arg[j]}' needs a value (${opt.value})`);
          flags.set(opt.long, v);
          break;
        }
        flags.set(opt.long, true);
      }
      continue;
    }
    positionals.push(arg);
  }
  if (flags.has("help")) return { flags, positionals };
  if (positionals.length < spec.minArgs) throw bad(`missing argument: expected ${spec.usage}`);
  if (positionals.length > spec.maxArgs) throw bad(`unexpected argument '${positionals[spec.maxArgs]}'`);
  return { flags, positionals };
}

export function helpText(spec: CommandSpec): string {
  const lines = [`usage: ext4wasm ${spec.name}${spec.options.length ? " [options]" : ""}${spec.usage ? ` ${spec.usage}` : ""}`, "", spec.summary, ""];
  if (spec.options.length) {
    lines.push("options:");
    const left = spec.options.map((o) => `${o.short ? `-${o.short}, ` : "    "}--${o.long}${o.value ? ` ${o.value}` : ""}`);
    const width = Math.max(...left.map((l) => l.length)) + 2;
    spec.options.forEach((o, k) => lines.push(`  ${left[k].padEnd(width)}${o.help}`));
  }
  if (spec.notes) lines.push("", spec.notes.trimEnd());
  return lines.join("\n") + "\n";
}

/** Options every image-reading command takes. */
export const IMAGE_OPTIONS: OptionSpec[] = [
  { long: "options", short: "o", value: "OPTS", help: "ext4 mount options, comma-separated (e.g. buffered_iomap,noload)" },
  { long: "offset", value: "BYTES", help: "byte offset of the filesystem in the image (K/M/G suffixes, or SECTORSs for 512-byte sectors)" },
];
export const JSON_OPTION: OptionSpec = { long: "json", help: "print JSON instead of text" };
export const HELP_OPTION: OptionSpec = { long: "help", short: "h", help: "show this help" };

/** Parses --offset: plain bytes, K/M/G/T (powers of 1024), or a count of 512-byte sectors ("2048s"). */
export function parseOffset(text: string): number {
  const m = /^(\d+)([kKmMgGtTsS]?)$/.exec(text.trim());
  if (!m) throw new UsageError(`bad --offset '${text}': expected a byte count such as 1048576, 1M or 2048s`);
  const scale: Record<string, number> = { "": 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4, s: 512 };
  const n = Number(m[1]) * scale[m[2].toLowerCase()];
  if (!Number.isSafeInteger(n)) throw new UsageError(`bad --offset '${text}': too large`);
  return n;
}
