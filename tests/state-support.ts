// Shared helpers of the state tests (not a test file itself).

import { connect, type NatsConnection } from "@nats-io/transport-node";
import { Kvm, type KV } from "@nats-io/kv";
import { JobNames } from "../runtime/core/names.ts";
import { assignToKeyGroup, canonicalJson, KeyGroupRange } from "../state/key-groups.ts";
import { createKeyedStateBackend } from "../state/factory.ts";
import { NOT_APPLIED, type KeyedStateBackend, type KeyScope, type StateAddress, type StateRequest, type StateRequestHandler, type StateRequestType } from "../state/contracts.ts";
import { DirectStateRequestHandler } from "../state/handlers/direct.ts";
import { createStateHandle } from "../state/handles/create.ts";
import type { StateBackendConfig } from "../state/config.ts";

export const MAX_PARALLELISM = 128;
export const FULL_RANGE = new KeyGroupRange(0, MAX_PARALLELISM - 1);

export function scopeOf(key: unknown, operator = "op1", maxParallelism = MAX_PARALLELISM): KeyScope {
  return { operator, keyGroup: assignToKeyGroup(key, maxParallelism), keyId: canonicalJson(key), key };
}

export function connectTo(url: string): Promise<NatsConnection> {
  return connect({ servers: url });
}

let jobCounter = 0;
/** A fresh job name per call, so tests in one file never share a bucket unless they mean to. */
export function freshJob(prefix = "t"): JobNames {
  return new JobNames(`${prefix}${process.pid}_${++jobCounter}`);
}

/** The job's state bucket, as a KV client sees it. */
export function stateBucket(nc: NatsConnection, names: JobNames): Promise<KV> {
  return new Kvm(nc).open(names.stateBucket);
}

/** The keys in the job's state bucket, sorted. */
export async function stateBucketKeys(nc: NatsConnection, names: JobNames): Promise<string[]> {
  const out: string[] = [];
  for await (const k of await (await stateBucket(nc, names)).keys()) out.push(k);
  return out.sort();
}

/** Handles of `backend` by descriptor and key, whose requests go through `handler` (the backend directly by default). */
export function handlesOf(backend: KeyedStateBackend, handler: StateRequestHandler = new DirectStateRequestHandler(backend)) {
  return <D extends Parameters<typeof createStateHandle>[0]>(d: D, key: unknown) => createStateHandle(d, scopeOf(key), handler);
}

export function openBackend(
  kind: "heap" | "jetstream-kv",
  nc: NatsConnection,
  names: JobNames,
  config: Partial<StateBackendConfig> = {},
  range: KeyGroupRange = FULL_RANGE,
): Promise<KeyedStateBackend> {
  return createKeyedStateBackend({ kind, nc, names, keyGroupRange: range, maxParallelism: MAX_PARALLELISM, config });
}

export interface RecordedRequest { type: StateRequestType; address: StateAddress; value?: unknown; cursor?: string | undefined; limit?: number | undefined; result?: unknown }

/** A direct handler that records every request and its result (to assert paging, request shapes). */
export class RecordingHandler implements StateRequestHandler {
  readonly log: RecordedRequest[] = [];
  private readonly inner: DirectStateRequestHandler;
  constructor(backend: KeyedStateBackend) { this.inner = new DirectStateRequestHandler(backend); }
  /** Never at once: every request goes through submit, to be recorded. */
  tryNow(): unknown { return NOT_APPLIED; }
  async submit(request: StateRequest): Promise<unknown> {
    const { kind: type, address } = request;
    const entry: RecordedRequest = {
      type, address,
      value: "value" in request ? request.value : undefined,
      cursor: request.kind === "scan" ? request.cursor : undefined,
      limit: request.kind === "scan" ? request.limit : undefined,
    };
    this.log.push(entry);
    entry.result = await this.inner.submit(request);
    return entry.result;
  }
}

export async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

/** The error a promise rejects with (fails when it resolves). */
export async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error("expected a rejection");
}
