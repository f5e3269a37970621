// Renders a benchmark report as Markdown: the throughput table (rows = request
// size, columns = path per state, then memcpy), the iomap/bh ratios of the same
// run, and what each state pulled from the device.

const MiB = 1 << 20;
const bsLabel = (bs) => (bs >= MiB ? `${bs / MiB}M` : `${bs / 1024}k`);
const mib = (x) => x.toFixed(0);
const cell = (s) => `${mib(s.median)} (${mib(s.min)}–${mib(s.max)})`;

function table(header, rows) {
  const line = (cells) => `| ${cells.join(" | ")} |`;
  return [line(header), line(header.map((_, i) => (i === 0 ? "---" : "---:"))), ...rows.map(line)].join("\n");
}

export function formatReport(r) {
  const { requestSizes, states, paths } = r.config;
  const names = paths.map((p) => p.name);
  const res = r.results;
  const withKernel = res.ondisk[requestSizes[0]].kernel !== undefined;
  const cols = withKernel ? [...names, "kernel"] : names;
  const ratio = (a, b) => (a.median / b.median).toFixed(2);
  const out = [];
  out.push(`## Sequential read, ${r.config.fileBytes / MiB} MiB file, MiB/s: median (min–max) of ${r.config.reps} passes after ${r.config.warmup} warm-up`);
  out.push("");
  out.push(table(
    ["bs", ...states.flatMap((s) => cols.map((n) => `${s} ${n}`)), "memcpy"],
    requestSizes.map((bs) => [
      bsLabel(bs),
      ...states.flatMap((s) => cols.map((n) => cell(res[s][bs][n]))),
      cell(res["pre-cache"][bs].memcpy),
    ]),
  ));
  out.push("");
  out.push("Ratios of medians, all from this run (references were timed in the same cells, pass by pass):");
  out.push("");
  out.push(table(
    ["bs", ...states.map((s) => `${s} iomap÷bh`), ...(withKernel ? states.map((s) => `${s} iomap÷kernel`) : []),
      ...names.map((n) => `pre-cache ${n}÷memcpy`), ...names.map((n) => `ondisk ${n}÷memcpy`)],
    requestSizes.map((bs) => [
      bsLabel(bs),
      ...states.map((s) => ratio(res[s][bs].iomap, res[s][bs].bh)),
      ...(withKernel ? states.map((s) => ratio(res[s][bs].iomap, res[s][bs].kernel)) : []),
      ...names.map((n) => ratio(res["pre-cache"][bs][n], res["pre-cache"][bs].memcpy)),
      ...names.map((n) => ratio(res.ondisk[bs][n], res.ondisk[bs].memcpy)),
    ]),
  ));
  out.push("");
  out.push("Device bytes per timed pass (median), MiB:");
  out.push("");
  out.push(table(
    ["bs", ...states.flatMap((s) => names.map((n) => `${s} ${n}`))],
    requestSizes.map((bs) => [bsLabel(bs), ...states.flatMap((s) => names.map((n) => (res[s][bs][n].deviceBytesPerPass / MiB).toFixed(2)))]),
  ));
  out.push("");
  const m = r.machine;
  out.push(`${m.cpu}, ${m.cores} cores, node ${m.node}; ${r.date}; ${r.wallSeconds.toFixed(0)} s; checks: ${r.failures.length ? `${r.failures.length} FAILED` : "all passed (every warm-up pass sha256-verified)"}`);
  out.push("");
  return out.join("\n");
}
