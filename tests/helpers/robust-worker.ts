// Worker entry for robustness walks (bundled by robust-pool.ts): runs one
// walk per message and posts the result back. Anything that escapes the walk
// itself is reported as a crash.

import { parentPort } from "node:worker_threads";
import { walkImage, type WalkJob } from "./robust-walk.js";
import { writeWorkload, type WriteJob } from "./robust-write.js";

parentPort!.on("message", (msg: { id: number; job: WalkJob | WriteJob }) => {
  try {
    const job = msg.job;
    parentPort!.postMessage({ id: msg.id, result: "kind" in job && job.kind === "write" ? writeWorkload(job) : walkImage(job as WalkJob) });
  } catch (e) {
    const err = e as Error;
    parentPort!.postMessage({ id: msg.id, crash: `${err?.name}: ${err?.message}\n${err?.stack ?? ""}` });
  }
});
