#!/usr/bin/env node
// The `weir` command. Jobs are TypeScript modules: tsx's loader lets them run with no build step.
import { setFlagsFromString } from "node:v8";
import { register } from "tsx/esm/api";

// Workers churn through promises and strings of in-flight state requests: with V8's default heap growth
// the heap grows far past the live set (1M keys of KV state: ~620 MB RSS, vs ~310 MB with this; no
// measurable throughput cost, bench/state.bench.ts). WEIR_HEAP_GROWING_PERCENT=0 keeps V8's default.
const growing = Number(process.env.WEIR_HEAP_GROWING_PERCENT ?? 50);
if (growing > 0) setFlagsFromString(`--heap-growing-percent=${growing}`);

register();
await import("../runtime/cli/main.ts");
