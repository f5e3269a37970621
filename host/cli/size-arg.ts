// truncate(1)'s SIZE: bytes with an optional K/M/G/T/P suffix (powers of
// 1024; KB/MB/... powers of 1000), and a prefix that makes it relative to the
// current size: "+" grows, "-" shrinks (not below 0), "<" at most, ">" at
// least, "/" rounds down and "%" rounds up to a multiple.

import { UsageError } from "./errors.js";

export interface SizeArg { op: "" | "+" | "-" | "<" | ">" | "/" | "%"; bytes: number }

export function parseSizeArg(text: string): SizeArg {
  const m = /^([-+<>/%]?)(\d+)(?:([KMGTPE])(iB)?|([KMGTPE])B)?$/i.exec(text.trim());
  if (!m) throw new UsageError(`truncate: invalid size '${text}': expected bytes with an optional K, M, G, T suffix`);
  const letter = (m[3] ?? m[5] ?? "").toUpperCase();
  const decimal = m[5] !== undefined;
  const power = letter ? "KMGTPE".indexOf(letter) + 1 : 0;
  const bytes = Number(m[2]) * (decimal ? 1000 : 1024) ** power;
  if (!Number.isSafeInteger(bytes)) throw new UsageError(`truncate: size '${text}' is too large`);
  return { op: m[1] as SizeArg["op"], bytes };
}

/** The size a SizeArg gives a file now `current` bytes long. */
export function resolveSize(s: SizeArg, current: number): number {
  switch (s.op) {
    case "": return s.bytes;
    case "+": return current + s.bytes;
    case "-": return Math.max(0, current - s.bytes);
    case "<": return Math.min(current, s.bytes);
    case ">": return Math.max(current, s.bytes);
    case "/": if (s.bytes === 0) throw new UsageError("truncate: division by zero"); return Math.floor(current / s.bytes) * s.bytes;
    case "%": if (s.bytes === 0) throw new UsageError("truncate: division by zero"); return Math.ceil(current / s.bytes) * s.bytes;
  }
}
