// Callbacks of the node:fs-style API run on a later turn of the event loop, as
// node's do, never before the call returns. Deno and Bun have setImmediate too;
// setTimeout covers any runtime without it.

export function defer(fn: () => void): void {
  if (typeof setImmediate === "function") setImmediate(fn);
  else setTimeout(fn, 0);
}
