// The heap backend: state in this process's memory, the synchronous baseline. Same request semantics as
// the JetStream KV backend (the parity tests hold them to it); nothing survives the process.

import type { KeyedStateBackend, ScanPage, StateAddress, StateBackendMetrics, StateRequest, StateRequestType } from "../contracts.ts";
import { StateBackendKind, StateRequestType as T } from "../contracts.ts";
import type { KeyGroupRange } from "../key-groups.ts";
import { OrderedKeys } from "./ordered-keys.ts";
import { checkKeyGroup, checkShape, closedError, scanLimit } from "./request-checks.ts";
import { snapshotValue } from "./snapshot.ts";

interface HeapMap {
  readonly keys: OrderedKeys;
  readonly values: Map<string, unknown>;
}

/** The state of one key group: plain values (and lists) by key, and maps. */
interface KeyGroupState {
  readonly values: Map<string, unknown>;
  readonly maps: Map<string, HeapMap>;
}

const DEFAULT_SCAN_LIMIT = 256;

function localKey(a: StateAddress): string {
  return `${a.operator}\u0000${a.state}\u0000${a.keyId}`;
}

export class HeapKeyedStateBackend implements KeyedStateBackend {
  readonly kind = StateBackendKind.Heap;
  private readonly groups: KeyGroupState[];
  private closed = false;
  private batches = 0;
  private requests = 0;

  constructor(readonly keyGroupRange: KeyGroupRange) {
    this.groups = Array.from({ length: keyGroupRange.size }, () => ({ values: new Map(), maps: new Map() }));
  }

  async executeBatch(requests: readonly StateRequest[]): Promise<void> {
    this.batches++;
    for (const r of requests) {
      let result: unknown;
      try {
        result = this.apply(r.type, r.address, r.value, r.cursor, r.limit);
      } catch (e) {
        r.reject(e);
        continue;
      }
      r.resolve(result);
    }
  }

  executeOne(type: StateRequestType, address: StateAddress, value?: unknown, cursor?: string, limit?: number): unknown {
    this.batches++;
    return this.apply(type, address, value, cursor, limit);
  }

  private apply(type: StateRequestType, address: StateAddress, value: unknown, cursor: string | undefined, limit: number | undefined): unknown {
    if (this.closed) throw closedError("heap");
    this.requests++;
    checkKeyGroup(this.keyGroupRange, address);
    checkShape(type, address, value);
    const group = this.groups[address.keyGroup - this.keyGroupRange.start]!;
    const key = localKey(address);
    const userKeyId = address.userKeyId;
    switch (type) {
      case T.Get:
        return snapshotValue(userKeyId === undefined ? group.values.get(key) : group.maps.get(key)?.values.get(userKeyId));
      case T.Put:
        if (userKeyId === undefined) {
          if (value === undefined) group.values.delete(key); else group.values.set(key, value);
        } else {
          putMapEntry(group, key, userKeyId, value);
        }
        return undefined;
      case T.Append: {
        const list = group.values.get(key);
        if (Array.isArray(list)) list.push(...(value as unknown[]));
        else group.values.set(key, (value as unknown[]).slice());
        return undefined;
      }
      case T.Scan:
        return scanMap(group.maps.get(key), cursor, scanLimit(limit, DEFAULT_SCAN_LIMIT));
      case T.ClearMap:
        group.maps.delete(key);
        return undefined;
    }
  }

  async flush(): Promise<void> {}

  metrics(): StateBackendMetrics {
    let entries = 0;
    for (const g of this.groups) {
      entries += g.values.size;
      for (const m of g.maps.values()) entries += m.values.size;
    }
    return {
      cacheEntries: entries, cacheBytes: 0, dirtyEntries: 0, dirtyBytes: 0, hits: this.requests, misses: 0,
      remoteReads: 0, remoteWrites: 0, batches: this.batches, requests: this.requests, coalescedReads: 0, evictions: 0, flushes: 0,
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const g of this.groups) { g.values.clear(); g.maps.clear(); }
  }
}

function putMapEntry(group: KeyGroupState, key: string, userKeyId: string, value: unknown): void {
  let map = group.maps.get(key);
  if (value === undefined) {
    if (!map) return;
    map.values.delete(userKeyId);
    map.keys.delete(userKeyId);
    if (map.values.size === 0) group.maps.delete(key);
    return;
  }
  if (!map) group.maps.set(key, (map = { keys: new OrderedKeys(), values: new Map() }));
  map.keys.add(userKeyId);
  map.values.set(userKeyId, value);
}

function scanMap(map: HeapMap | undefined, cursor: string | undefined, limit: number): ScanPage {
  if (!map) return { entries: [] };
  const page = map.keys.page(cursor, limit);
  const entries = page.keys.map((k) => [k, map.values.get(k)] as const);
  return page.more ? { entries, cursor: page.keys[page.keys.length - 1]! } : { entries };
}
