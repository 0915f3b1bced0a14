#!/usr/bin/env -S node --max-semi-space-size=32
// The `weir` command. Jobs are TypeScript modules: tsx's loader lets them run with no build step.
import { setFlagsFromString } from "node:v8";
import { register as registerHooks } from "node:module";
import { register } from "tsx/esm/api";

// Workers churn through promises and strings of in-flight state requests: with V8's default heap growth
// the heap grows far past the live set (1M keys of KV state: ~620 MB RSS, vs ~310 MB with this; no
// measurable throughput cost, bench/state.bench.ts). WEIR_HEAP_GROWING_PERCENT=0 keeps V8's default.
const growing = Number(process.env.WEIR_HEAP_GROWING_PERCENT ?? 50);
if (!(Number.isInteger(growing) && growing >= 0)) {
  process.stderr.write(`weir: WEIR_HEAP_GROWING_PERCENT: expected a whole number of percent (0 keeps V8's default), got ${JSON.stringify(process.env.WEIR_HEAP_GROWING_PERCENT)}\n`);
  process.exit(1);
}
if (growing > 0) setFlagsFromString(`--heap-growing-percent=${growing}`);
// The young generation (the shebang's --max-semi-space-size=32; V8's default is 16 MB, and V8 reads it
// only at start): a backlog buffered for sorting, and the drain's entries and KV writes, survive a few
// scavenges; with 32 MB more of them die young. Sorted backlog 0.85x wall, streamed ~0.93x; RSS of a
// 5M-record sort 340 -> 352 MB (bench/backlog.bench.ts). `node bin/weir.mjs` runs without the shebang:
// the package's scripts and `--workers` pass the flag themselves (runtime/cli/commands/workers.ts).

register();
// After tsx's, so it runs first: job files in a CommonJS folder still load as ES modules.
registerHooks("../runtime/cli/typescript-as-esm.mjs", import.meta.url);
// A job outside any folder with weir installed (a temporary folder, say) still imports "weir": this one.
registerHooks("../runtime/cli/resolve-weir.mjs", import.meta.url);
await import("../runtime/cli/main.ts");
