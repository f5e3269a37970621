// Worker entry for robustness walks (bundled by robust-pool.ts): runs one
// walk per message and posts the result back. Anything that escapes the walk
// itself is reported as a crash.

import { parentPort } from "node:worker_threads";
import { walkImage, type WalkJob } from "./robust-walk.js";

parentPort!.on("message", (msg: { id: number; job: WalkJob }) => {
  try {
    parentPort!.postMessage({ id: msg.id, result: walkImage(msg.job) });
  } catch (e) {
    const err = e as Error;
    parentPort!.postMessage({ id: msg.id, crash: `${err?.name}: ${err?.message}\n${err?.stack ?? ""}` });
  }
});
