// Contracts of the state layer (types only). The runtime binds handles to the current record's key and
// hands their requests to a StateRequestHandler: directly to the backend in sync mode, through the
// AsyncExecutionController's batches in async mode (FLIP-424/425/426).

import type * as t from "io-ts";
import type { KeyGroupRange } from "./key-groups.ts";

// ---------------------------------------------------------------- descriptors (user-facing)

export const StateKind = {
  Value: "value",
  List: "list",
  Map: "map",
  Reducing: "reducing",
  Aggregating: "aggregating",
} as const;
export type StateKind = (typeof StateKind)[keyof typeof StateKind];

interface DescriptorBase<S> {
  readonly name: string;
  /** Phantom: the handle type `ctx.state(descriptor)` returns. */
  readonly __handle?: S;
}
export interface ValueStateDescriptor<T> extends DescriptorBase<ValueState<T>> {
  readonly kind: "value";
  readonly codec: t.Type<T, unknown, unknown>;
}
export interface ListStateDescriptor<T> extends DescriptorBase<ListState<T>> {
  readonly kind: "list";
  readonly codec: t.Type<T, unknown, unknown>;
}
export interface MapStateDescriptor<K, V> extends DescriptorBase<MapState<K, V>> {
  readonly kind: "map";
  readonly keyCodec: t.Type<K, unknown, unknown>;
  readonly codec: t.Type<V, unknown, unknown>;
}
export interface ReducingStateDescriptor<T> extends DescriptorBase<ReducingState<T>> {
  readonly kind: "reducing";
  readonly codec: t.Type<T, unknown, unknown>;
  readonly reduce: (a: T, b: T) => T;
}
export interface AggregateFunction<IN, ACC, OUT> {
  createAccumulator(): ACC;
  add(value: IN, accumulator: ACC): ACC;
  getResult(accumulator: ACC): OUT;
  merge?(a: ACC, b: ACC): ACC;
}
export interface AggregatingStateDescriptor<IN, ACC, OUT> extends DescriptorBase<AggregatingState<IN, OUT>> {
  readonly kind: "aggregating";
  readonly codec: t.Type<ACC, unknown, unknown>;
  readonly aggregate: AggregateFunction<IN, ACC, OUT>;
}
export type StateDescriptor =
  | ValueStateDescriptor<any>
  | ListStateDescriptor<any>
  | MapStateDescriptor<any, any>
  | ReducingStateDescriptor<any>
  | AggregatingStateDescriptor<any, any, any>;
export type HandleOf<D> = D extends DescriptorBase<infer S> ? S : never;

// ---------------------------------------------------------------- handles (user-facing, all async)

export interface ValueState<T> {
  /** undefined when absent */
  value(): Promise<T | undefined>;
  /** undefined deletes */
  update(value: T | undefined): Promise<void>;
  clear(): Promise<void>;
}
export interface ListState<T> {
  /** [] when absent, as Flink's (an empty list is never stored: `update([])` clears). */
  get(): Promise<T[]>;
  add(value: T): Promise<void>;
  /** Any iterable of elements (an array, a Set, a generator), as Flink's takes any List. */
  addAll(values: Iterable<T>): Promise<void>;
  /** an empty list clears */
  update(values: Iterable<T>): Promise<void>;
  clear(): Promise<void>;
}
export interface MapState<K, V> {
  get(key: K): Promise<V | undefined>;
  put(key: K, value: V): Promise<void>;
  putAll(entries: Iterable<readonly [K, V]> | Record<string, V>): Promise<void>;
  remove(key: K): Promise<void>;
  contains(key: K): Promise<boolean>;
  /** `await` gives every entry; `for await` reads page by page, never loading a large map whole. */
  entries(): StateIterable<[K, V]>;
  keys(): StateIterable<K>;
  values(): StateIterable<V>;
  isEmpty(): Promise<boolean>;
  clear(): Promise<void>;
}
/** A promise of every item that can also be iterated with `for await`, page by page (MapState's iteration). */
export interface StateIterable<T> extends Promise<T[]>, AsyncIterable<T> {}
export interface ReducingState<T> {
  get(): Promise<T | undefined>;
  add(value: T): Promise<void>;
  clear(): Promise<void>;
}
export interface AggregatingState<IN, OUT> {
  get(): Promise<OUT | undefined>;
  add(value: IN): Promise<void>;
  clear(): Promise<void>;
}

// ---------------------------------------------------------------- scope (runtime → handles)

/** The key a handle is bound to: the current record's key, in one operator. */
export interface KeyScope {
  /** The operator's uid (a NATS token). */
  readonly operator: string;
  readonly keyGroup: number;
  /** canonicalJson of the key: its identity in state. */
  readonly keyId: string;
  /** The key itself, for error messages. */
  readonly key: unknown;
}

// ---------------------------------------------------------------- requests (runtime ↔ backend)

/** Where one state entry lives. `keyId` / `userKeyId` are canonical JSON of the encoded keys. */
export interface StateAddress {
  /** The operator's uid: state is per operator. */
  readonly operator: string;
  /** The descriptor's name. */
  readonly state: string;
  readonly keyGroup: number;
  readonly keyId: string;
  /** Map states: the entry's key; absent for the other kinds and for whole-map requests. */
  readonly userKeyId?: string | undefined;
  /**
   * Backend-private memo: the backend that served this address last stores itself and what it resolved
   * the address to here (KV: the key's cache entry, or its KV key before there is one; heap: the state's
   * namespace in the key's group). A handle lives as long as its key's slot and reuses one
   * address object for all its calls, so the address is resolved once per key, not once per request.
   */
  keyOwner?: unknown;
  keyMemo?: unknown;
  /**
   * Backend-private too: a copy of the key's value the address holds, so that a request loads no other
   * object for it (the heap's: heap-namespace.ts), with where the backend keeps it and whether it is current.
   */
  heldValue?: unknown;
  heldIndex?: number;
  heldEpoch?: number;
  heldToken?: number;
}

export const StateRequestType = {
  /** result: the stored (encoded) value, or undefined */
  Get: "get",
  /** value: the encoded value; undefined deletes */
  Put: "put",
  /** Map states: one page of entries of the map at `address` (userKeyId absent). result: ScanPage */
  Scan: "scan",
  /** Map states: delete every entry of the map at `address` (userKeyId absent). */
  ClearMap: "clearMap",
  /**
   * List states: value is a non-empty array of encoded elements, appended to the stored list (created when
   * absent). One request instead of a Get and a Put, so `ListState.add` costs no read round trip in the handle.
   */
  Append: "append",
} as const;
export type StateRequestType = (typeof StateRequestType)[keyof typeof StateRequestType];

export interface ScanPage {
  readonly entries: ReadonlyArray<readonly [userKeyId: string, value: unknown]>;
  /** Pass back to get the next page; undefined when this was the last one. */
  readonly cursor?: string;
}

interface RequestAt<K extends StateRequestType> {
  readonly kind: K;
  readonly address: StateAddress;
}
/** result: the stored (encoded) value, or undefined */
export interface GetRequest extends RequestAt<typeof StateRequestType.Get> {}
/** `value`: the encoded value; undefined deletes */
export interface PutRequest extends RequestAt<typeof StateRequestType.Put> { readonly value: unknown }
/** List states: a non-empty array of encoded elements, appended to the stored list. */
export interface AppendRequest extends RequestAt<typeof StateRequestType.Append> { readonly value: readonly unknown[] }
/** Map states: one page of at most `limit` entries after `cursor`. result: ScanPage */
export interface ScanRequest extends RequestAt<typeof StateRequestType.Scan> { readonly cursor?: string; readonly limit?: number }
/** Map states: deletes every entry of the map. */
export interface ClearMapRequest extends RequestAt<typeof StateRequestType.ClearMap> {}

/**
 * One state request: the one shape every handler and backend takes (build it with `stateRequest`, which
 * gives every request the same object layout, so the code reading it stays monomorphic).
 */
export type StateRequest = GetRequest | PutRequest | AppendRequest | ScanRequest | ClearMapRequest;

/** A request in a batch, with its completion reported per request (FLIP-426): exactly one call, once. */
export interface PendingStateRequest {
  readonly request: StateRequest;
  resolve(result: unknown): void;
  reject(error: unknown): void;
}

/** What `tryNow` returns when the request cannot be answered at once (it has to go in a batch). */
export const NOT_APPLIED: unique symbol = Symbol("not applied");

/** Where state handles send their requests: a backend directly, or the async execution controller. */
export interface StateRequestHandler {
  /** The request's result, once applied. */
  submit(request: StateRequest): Promise<unknown>;
  /**
   * Answer now if you can: the result when nothing remote is needed (a Promise for a write that waits
   * for a flush), else NOT_APPLIED and the caller uses `submit`. Handles use it so that an answer already
   * known costs one resolved promise, not a chain of them. May throw (the request failed).
   */
  tryNow(request: StateRequest): unknown;
}

// ---------------------------------------------------------------- backends

export const StateBackendKind = { JetStreamKv: "jetstream-kv", Heap: "heap" } as const;
export type StateBackendKind = (typeof StateBackendKind)[keyof typeof StateBackendKind];

export interface StateBackendMetrics {
  readonly cacheEntries: number;
  readonly cacheBytes: number;
  readonly dirtyEntries: number;
  readonly dirtyBytes: number;
  readonly hits: number;
  readonly misses: number;
  readonly remoteReads: number;
  readonly remoteWrites: number;
  readonly batches: number;
  readonly requests: number;
  /** Reads that joined a remote read of the same key already in flight (no round trip of their own). */
  readonly coalescedReads: number;
  /** Misses answered without a remote read: keys never written, in a bucket that was empty when the backend opened. */
  readonly knownAbsent: number;
  /** Clean entries dropped from the cache to stay within its bounds. */
  readonly evictions: number;
  /** Completed write-backs of dirty entries to durable storage. */
  readonly flushes: number;
  /** Writes waiting behind a closed write fence (a worker that cannot confirm it still runs in the job's epoch). */
  readonly writesFenced: number;
}

/** The keyed state of one operator subtask: the key groups of `keyGroupRange`, for every operator of it. */
export interface KeyedStateBackend {
  readonly kind: StateBackendKind;
  readonly keyGroupRange: KeyGroupRange;
  /**
   * Executes requests as one unit (FLIP-426): reads are fetched together (one round trip's latency for
   * the batch, not one per request), writes are buffered. Requests on the same address apply in order.
   * Completion is reported per request; the returned promise settles when all have been reported.
   */
  executeBatch(requests: readonly PendingStateRequest[]): Promise<void>;
  /**
   * Answer now if you can: applies the request at once when it needs nothing remote (the heap: always;
   * KV: a Get of a cached or known-absent value, a Put of a plain value) and returns its result (a Promise
   * when the write must wait for a flush), else NOT_APPLIED and the request goes in a batch. The caller
   * guarantees that no earlier request on the same address is still pending.
   */
  tryNow(request: StateRequest): unknown;
  /**
   * True when the backend knows, without a remote read and without caching anything, that the (value)
   * address holds nothing; false when it holds something or it cannot tell. The backlog sort folds a
   * reduce's records as they arrive only for keys whose state is known empty.
   */
  knownEmpty(address: StateAddress): boolean;
  /** Writes every buffered change to durable storage (normal stop, savepoint). */
  flush(): Promise<void>;
  metrics(): StateBackendMetrics;
  /** Flushes, stops timers and releases memory. The NATS connection is the caller's. */
  close(): Promise<void>;
  /**
   * Drops buffered changes WITHOUT writing them and stops timers: a failed or cancelled subtask of a job
   * with checkpoints must not leak state that no checkpoint committed (the restart restores it).
   */
  dispose(): void;

  // ---- checkpoints, see docs/state.md "Checkpoints".

  /**
   * Freezes the changes made since the previous snapshot as checkpoint `checkpointId` and makes them
   * durable without making them visible: appended as large chunks to the changelog stream (one subject per
   * key group), not written to KV. Requests keep executing meanwhile (the delta is copied, not locked).
   */
  snapshot(checkpointId: number): Promise<StateSnapshot>;
  /**
   * The checkpoint is committed: its delta may now be materialized into KV (in the background). Resolves,
   * for backends that materialize, with the newest checkpoint the remote store holds: deltas up to it need
   * no replay any more (it may be older than `checkpointId` when materialization is not yet due).
   */
  notifyCheckpointComplete(checkpointId: number): Promise<number | void>;
  /** The checkpoint failed: its delta is merged back into the next one. */
  notifyCheckpointAborted(checkpointId: number): void;
  /**
   * Before any request: makes state exactly as of the committed checkpoint `snapshots` describe, replaying
   * the committed changelog chunks past what KV already holds, for the key groups of this backend.
   */
  restore(snapshots: readonly StateSnapshot[]): Promise<void>;
}

/** What a checkpoint records about one subtask's keyed state (small: references, not data). */
export interface StateSnapshot {
  readonly checkpointId: number;
  readonly keyGroupRange: { readonly start: number; readonly end: number };
  /** Changelog stream and the sequence range holding this checkpoint's delta (empty when first > last). */
  readonly changelog: {
    readonly stream: string;
    readonly firstSeq: number;
    readonly lastSeq: number;
    /** The vertex whose changelog subjects hold the delta. */
    readonly owner?: string;
    /**
     * Every message of the delta: key group and stream sequence (a restore reads its key groups' only), and
     * the checkpoint that appended it when an earlier one did (a heap snapshot's unchanged key group).
     */
    readonly messages?: ReadonlyArray<readonly [keyGroup: number, seq: number, writtenAt?: number]>;
  };
  /** "delta": the changes since the last completed checkpoint, on top of what KV holds (jetstream-kv). "full": all state of the range (heap). */
  readonly kind?: "delta" | "full";
  /** Size of the delta: what the checkpoint cost. */
  readonly entries: number;
  readonly bytes: number;
}
