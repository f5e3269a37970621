// Nanosecond image times -> the argument fs.utimesSync/lutimesSync take.
//
// What node 20 really does (checked against libuv 1.46 and node's
// toUnixTimestamp):
//   * a number below 0 is silently replaced by "now", so pre-1970 times cannot
//     be passed as numbers; a numeric *string* skips that check and is parsed
//     with unary +, sign included;
//   * libuv (uv__fs_to_timespec) truncates the double toward zero to whole
//     microseconds before utimensat(2): sub-microsecond digits are always lost.
// So the best node can set is the time floored to the microsecond. We aim at
// the middle of that microsecond (+-500 ns, away from zero, because libuv
// truncates toward zero), so the double's rounding error cannot tip the result
// into a neighbour: exact to the microsecond while |t| < 2^33 s (until year
// 2242); beyond that a double's spacing (~1.9 us) makes it +-1 us.

const NS_PER_US = 1000n;
const NS_PER_S = 1_000_000_000n;

/** Floors ns to whole microseconds (toward -infinity, as the timespec's tv_nsec truncation does). */
export function floorToMicros(ns: bigint): bigint {
  const r = ns % NS_PER_US;
  return r < 0n ? ns - r - NS_PER_US : ns - r;
}

/** The exact decimal text of a time in ns, as seconds: "-1000000000.123457500". */
function decimalSeconds(ns: bigint): string {
  const neg = ns < 0n;
  const abs = neg ? -ns : ns;
  return `${neg ? "-" : ""}${abs / NS_PER_S}.${(abs % NS_PER_S).toString().padStart(9, "0")}`;
}

/** The utimes argument that makes the host record floorToMicros(ns). */
export function utimesArg(ns: bigint): string {
  const us = floorToMicros(ns);
  return decimalSeconds(us >= 0n ? us + 500n : us - 500n);
}
