// Bundles host/ (with the wasm embedded as base64) into one ESM and one CJS
// file, so the same dist/ loads unchanged in Node, Deno and Bun.
import typescript from "@rollup/plugin-typescript";

const external = (id) => id.startsWith("node:");

export default [
  {
    input: { index: "host/index.ts", cli: "host/cli/main.ts" },
    external,
    output: [
      { dir: "dist", format: "es", entryFileNames: "[name].mjs", chunkFileNames: "[name]-[hash].mjs", sourcemap: true },
      { dir: "dist", format: "cjs", entryFileNames: "[name].cjs", chunkFileNames: "[name]-[hash].cjs", sourcemap: true },
    ],
    plugins: [typescript({ tsconfig: "./tsconfig.json", declaration: false, declarationMap: false, outDir: undefined, noEmitOnError: true })],
  },
];
