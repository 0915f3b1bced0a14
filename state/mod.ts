// The state layer's public surface (re-exports only).
export * from "./contracts.ts";
export { valueState, listState, mapState, reducingState, aggregatingState } from "./descriptors.ts";
export { createStateHandle, type StateHandleOptions } from "./handles/create.ts";
export { baseAddress } from "./handles/address.ts";
export { DEFAULT_SCAN_PAGE_SIZE } from "./handles/map.ts";
export { DirectStateRequestHandler } from "./handlers/direct.ts";
export { BatchingStateRequestHandler } from "./handlers/batching.ts";
export { stateRequest } from "./requests.ts";
export { HeapKeyedStateBackend } from "./backends/heap.ts";
export { JetStreamKvStateBackend } from "./backends/jetstream-kv/backend.ts";
export { createKeyedStateBackend, destroyKeyedState, type CreateKeyedStateBackendOptions } from "./factory.ts";
export {
  DEFAULT_STATE_BACKEND_CONFIG,
  resolveStateBackendConfig,
  StateBackendConfigCodec,
  StateTuningCodec,
  type StateBackendConfig,
} from "./config.ts";
export { StateAccessError, StateCodecError, StateLimitError, StateRestoreError, StateWriteConflictError } from "./errors.ts";
export {
  assignToKeyGroup,
  canonicalJson,
  DEFAULT_MAX_PARALLELISM,
  KeyGroupRange,
  keyHashCode,
  operatorIndexForKey,
  operatorIndexForKeyGroup,
} from "./key-groups.ts";
