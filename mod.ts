// weir: Flink-style stateful stream processing for TypeScript on NATS. The public API (re-exports only).
export * from "./runtime/mod.ts";
export * from "./state/mod.ts";
