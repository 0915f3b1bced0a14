// What weir's own folders (bench/, scenarios/, examples/, tests/) use beyond the public API (re-exports
// only): a real nats-server launcher, names, checkpoint storage, connection helpers. Not part of the
// public contract: it may change with any release. The public entry is runtime/mod.ts.
export { launchNatsServer } from "./nats/server-process.ts";
export type { NatsServerProcess, LaunchOptions } from "./nats/server-process.ts";
export { RestartableServer } from "./nats/restartable-server.ts";
export { connectNats } from "./nats/connect.ts";
export { JobNames, ConnectorNames, GlobalNames } from "./core/names.ts";
export { systemClock, ManualClock } from "./core/clock.ts";
export { CheckpointStore } from "./checkpoint/store.ts";
export { summarize } from "./checkpoint/metadata.ts";
