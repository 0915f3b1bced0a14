// The heap backend: state in this process's memory, the synchronous baseline. Same request semantics as
// the JetStream KV backend (the parity tests hold them to it); nothing survives the process.

import type { KeyedStateBackend, PendingStateRequest, ScanPage, StateAddress, StateBackendMetrics, StateRequest, StateSnapshot } from "../contracts.ts";
import { StateAccessError, StateRestoreError } from "../errors.ts";
import { appendedSnapshot, type ChangelogStream } from "./changelog/stream.ts";
import { FullSnapshots } from "./changelog/full-snapshots.ts";
import type { DeltaEntry } from "./changelog/format.ts";
import { StateBackendKind, StateRequestType as T } from "../contracts.ts";
import type { KeyGroupRange } from "../key-groups.ts";
import { OrderedKeys } from "./ordered-keys.ts";
import { checkKeyGroup, checkShape, closedError, scanLimit } from "./request-checks.ts";
import { snapshotValue } from "./snapshot.ts";
import { fromStateJson, toStateJson } from "./json-safe.ts";
import { baseKey, checkBaseKey, mapEntryKey } from "./jetstream-kv/keys.ts";
import { detachIfEmpty, existingNamespace, Namespace, namespaceOf, namespaces, NO_INDEX, released, type HeapMap, type KeyGroupState } from "./heap-namespace.ts";
import { serialize, tooLarge, valueJson } from "./jetstream-kv/entry-json.ts";
import { DEFAULT_STATE_BACKEND_CONFIG } from "../config.ts";

const DEFAULT_SCAN_LIMIT = 256;

export class HeapKeyedStateBackend implements KeyedStateBackend {
  readonly kind = StateBackendKind.Heap;
  private readonly groups: KeyGroupState[];
  private closed = false;
  private batches = 0;
  private requests = 0;
  /** The last token given to an address (heap-namespace.ts: which address may use its copy of a value). */
  private tokens = 0;
  /** The snapshots this backend took: their messages are deleted once a newer one commits. */
  private readonly snapshots: FullSnapshots | undefined;

  /**
   * `changelog`: where checkpoints go. The heap has no durable store behind it, so each snapshot is FULL
   * (every entry of the range, captured and encoded: cost growing with the state; only the key groups that
   * changed are appended, full-snapshots.ts) and a restore reads the newest one.
   */
  constructor(
    readonly keyGroupRange: KeyGroupRange,
    private readonly changelog?: { readonly stream: ChangelogStream; readonly owner: string; readonly forOwner: (owner: string) => ChangelogStream; readonly retain?: number },
    /** The KV backend's limit, enforced the same way: a job that passes on the heap does not fail on KV for a value's size. */
    private readonly maxValueBytes = DEFAULT_STATE_BACKEND_CONFIG.maxValueBytes,
  ) {
    this.groups = Array.from({ length: keyGroupRange.size }, () => new Map());
    this.snapshots = changelog ? new FullSnapshots(changelog.stream, changelog.retain) : undefined;
  }

  async executeBatch(requests: readonly PendingStateRequest[]): Promise<void> {
    this.batches++;
    for (const r of requests) {
      let result: unknown;
      try {
        result = this.apply(r.request);
      } catch (e) {
        r.reject(e);
        continue;
      }
      r.resolve(result);
    }
  }

  /** Always answers: nothing is remote. */
  tryNow(request: StateRequest): unknown {
    return this.apply(request);
  }

  knownEmpty(address: StateAddress): boolean {
    if (this.closed || address.userKeyId !== undefined || !this.keyGroupRange.contains(address.keyGroup)) return false;
    return existingNamespace(this.groups[address.keyGroup - this.keyGroupRange.start]!, address.operator, address.state)?.indexes.has(address.keyId) !== true;
  }

  private apply(request: StateRequest): unknown {
    if (this.closed) throw closedError("heap");
    this.requests++;
    const address = request.address;
    checkShape(request);
    const userKeyId = address.userKeyId;
    const kind = request.kind;
    const memo = address.keyOwner === this ? address.keyMemo : undefined;
    if (userKeyId === undefined && kind !== T.Scan && kind !== T.ClearMap) {
      // The address's own copy of the value while it may use it (heap-namespace.ts), else its key looked up.
      const ns = memo instanceof Namespace && memo.attached && address.heldEpoch === memo.epoch ? memo : this.holdValue(address);
      const i = address.heldIndex!;
      switch (kind) {
        case T.Get:
          return i === NO_INDEX ? undefined : snapshotValue(address.heldValue);
        case T.Put: {
          const value = request.value;
          if (value === undefined) {
            if (i !== NO_INDEX) this.removeValue(ns, address, i);
            return undefined;
          }
          const json = valueJson(value, address, this.maxValueBytes); // checked before anything changes
          this.storeValue(ns, address, i, value, json === undefined ? -1 : json.length);
          return undefined;
        }
        case T.Append:
          this.append(ns, address, i, request.value);
          return undefined;
      }
    }
    // Map entries, and Scan and ClearMap (a whole map): the address memoizes the namespace.
    const group = memo instanceof Namespace && memo.attached ? memo : this.resolve(address);
    const key = address.keyId;
    switch (request.kind) {
      case T.Get:
        return snapshotValue(group.maps.get(key)?.values.get(userKeyId!));
      case T.Put:
        valueJson(request.value, address, this.maxValueBytes);
        putMapEntry(group, key, userKeyId!, request.value, address);
        return undefined;
      case T.Append:
        return undefined; // checkShape refused an append to a map entry
      case T.Scan:
        return scanMap(group.maps.get(key), request.cursor, scanLimit(request.limit, DEFAULT_SCAN_LIMIT));
      case T.ClearMap:
        group.maps.delete(key);
        detachIfEmpty(group);
        return undefined;
    }
  }

  /** As the KV backend appends: the list's JSON length (known without serializing it) within maxValueBytes. */
  private append(ns: Namespace, address: StateAddress, i: number, values: readonly unknown[]): void {
    const added = serialize(values, address, this.maxValueBytes).length;
    const current = i !== NO_INDEX && Array.isArray(address.heldValue) ? (address.heldValue as unknown[]) : undefined;
    if (current === undefined || current.length === 0) {
      this.storeValue(ns, address, i, values.slice(), added);
      return;
    }
    // "[a,b]" + "[c]" = "[a,b,c]"
    const known = ns.lengthAt(i);
    const length = (known >= 0 ? known : toStateJson(current)!.length) + added - 1;
    if (length > this.maxValueBytes) throw tooLarge(address, length, this.maxValueBytes);
    for (let j = 0; j < values.length; j++) current.push(values[j]); // no spread: a huge addAll would overflow the stack
    ns.storeAt(i, current, length);
  }

  /**
   * Looks the address's key up in its namespace: the address holds a copy of the value from now on (the
   * namespace's `heldBy`), or none when the key has no value. Its KV key is checked then, as the KV
   * backend would refuse it (a job passing on the heap must not fail on KV).
   */
  private holdValue(address: StateAddress): Namespace {
    const memo = address.keyOwner === this ? address.keyMemo : undefined;
    const ns = memo instanceof Namespace && memo.attached ? memo : this.namespaceFor(address);
    // A token from another backend could be one of this backend's.
    if (memo === undefined || address.heldToken === 0) address.heldToken = ++this.tokens;
    address.keyOwner = this;
    address.keyMemo = ns;
    const i = ns.indexes.get(address.keyId);
    if (i !== undefined) ns.heldBy(address, i, address.heldToken!);
    else {
      checkBaseKey(address);
      released(address);
    }
    return ns;
  }

  /** A value (never undefined) for the address's key, which it holds a copy of (holdValue). */
  private storeValue(ns: Namespace, address: StateAddress, i: number, value: unknown, jsonLength: number): void {
    if (i === NO_INDEX) {
      address.heldIndex = ns.add(address.keyId, value, jsonLength, address.heldToken!);
      address.heldEpoch = ns.epoch;
    } else ns.storeAt(i, value, jsonLength);
    address.heldValue = value;
  }

  /** The value removed: out of the namespace, so that removed keys cost nothing. */
  private removeValue(ns: Namespace, address: StateAddress, i: number): void {
    ns.remove(address.keyId, i);
    released(address);
    detachIfEmpty(ns);
  }

  /** The namespace of a map address, memoized on it (its key group checked once). */
  private resolve(address: StateAddress): Namespace {
    const ns = this.namespaceFor(address);
    address.keyOwner = this;
    address.keyMemo = ns;
    return ns;
  }

  private namespaceFor(address: StateAddress): Namespace {
    checkKeyGroup(this.keyGroupRange, address);
    return namespaceOf(this.groups[address.keyGroup - this.keyGroupRange.start]!, address.operator, address.state);
  }

  async flush(): Promise<void> {}

  // ------------------------------------------------------------------ checkpoints (full snapshots)

  snapshot(checkpointId: number): Promise<StateSnapshot> {
    const changelog = this.requireChangelog("snapshot");
    // Capture now, synchronously (values serialized): nothing after the barrier leaks in.
    // An entry's key is the JSON of [keyGroup, operator, state, keyId, userKeyId?].
    const byKeyGroup = new Map<number, DeltaEntry[]>();
    let entries = 0;
    try {
      entries = this.capture(byKeyGroup);
    } catch (e) {
      return Promise.reject(e);
    }
    return this.snapshots!.take(checkpointId, byKeyGroup).then((r) =>
      appendedSnapshot(checkpointId, "full", this.keyGroupRange, changelog.stream.stream, changelog.owner, r, entries));
  }

  /** Every entry of the range, serialized now (nothing after the barrier leaks in), by key group; the count. */
  private capture(byKeyGroup: Map<number, DeltaEntry[]>): number {
    let entries = 0;
    this.groups.forEach((g, i) => {
      const keyGroup = this.keyGroupRange.start + i;
      const out: DeltaEntry[] = [];
      for (const ns of namespaces(g)) {
        for (const [keyId, value] of ns.entries()) out.push({ key: JSON.stringify([keyGroup, ns.operator, ns.state, keyId]), json: toStateJson(value) });
        for (const [keyId, m] of ns.maps) {
          for (const [userKeyId, v] of m.values) out.push({ key: JSON.stringify([keyGroup, ns.operator, ns.state, keyId, userKeyId]), json: toStateJson(v) });
        }
      }
      if (out.length > 0) byKeyGroup.set(keyGroup, out);
      entries += out.length;
    });
    return entries;
  }

  /**
   * Checkpoint `checkpointId` committed: the full snapshots this backend took before the checkpoints the
   * job retains are superseded, so their messages are deleted. Snapshots it was restored from (a
   * savepoint, an earlier run's checkpoint) are left alone: they stay restorable.
   */
  async notifyCheckpointComplete(checkpointId: number): Promise<void> {
    const superseded = this.snapshots?.superseded(checkpointId) ?? [];
    if (superseded.length === 0 || !this.changelog || this.closed) return;
    await this.changelog.stream.deleteMessages(superseded);
  }
  notifyCheckpointAborted(): void {}

  /** Loads the newest full snapshot's entries of this backend's key groups (before any request). */
  async restore(snapshots: readonly StateSnapshot[]): Promise<void> {
    const changelog = this.requireChangelog("restore");
    if (this.requests > 0) throw new StateAccessError("restore() must come before any state request");
    const range = this.keyGroupRange;
    const mine = snapshots.filter((s) => s.keyGroupRange.start <= range.end && s.keyGroupRange.end >= range.start);
    if (mine.length === 0) return;
    if (mine.some((s) => s.kind !== "full")) throw new StateRestoreError("a jetstream-kv checkpoint cannot be restored into the heap state backend");
    const target = Math.max(...mine.map((s) => s.checkpointId));
    const entries = new Map<string, string | undefined>();
    for (const s of mine.filter((x) => x.checkpointId === target)) {
      await changelog.forOwner(s.changelog.owner ?? changelog.owner).read(s.checkpointId, s.changelog.messages ?? [], range, entries);
    }
    for (const [key, json] of entries) {
      if (json === undefined) continue;
      const [keyGroup, operator, state, keyId, userKeyId] = JSON.parse(key) as [number, string, string, string, string | undefined];
      const ns = namespaceOf(this.groups[keyGroup - range.start]!, operator, state);
      if (userKeyId === undefined) {
        const i = ns.indexes.get(keyId);
        if (i === undefined) ns.add(keyId, fromStateJson(json), json.length, 0);
        else ns.storeAt(i, fromStateJson(json), json.length);
      }
      else putMapEntry(ns, keyId, userKeyId, fromStateJson(json));
    }
  }

  private requireChangelog(what: string) {
    if (!this.changelog) throw new StateAccessError(`${what}: this heap backend has no changelog stream (it was created without a NATS connection)`);
    return this.changelog;
  }

  metrics(): StateBackendMetrics {
    let entries = 0;
    for (const g of this.groups) {
      for (const ns of namespaces(g)) {
        entries += ns.indexes.size;
        for (const m of ns.maps.values()) entries += m.values.size;
      }
    }
    return {
      cacheEntries: entries, cacheBytes: 0, dirtyEntries: 0, dirtyBytes: 0, hits: this.requests, misses: 0,
      remoteReads: 0, remoteWrites: 0, batches: this.batches, requests: this.requests, coalescedReads: 0, knownAbsent: 0, evictions: 0, flushes: 0, writesFenced: 0,
    };
  }

  async close(): Promise<void> {
    this.dispose();
  }

  dispose(): void {
    this.closed = true;
    for (const g of this.groups) g.clear();
  }
}

/** `address`: a new entry's KV key is checked first, as the KV backend would refuse it (a restore passes none: its keys came from KV). */
function putMapEntry(group: Namespace, key: string, userKeyId: string, value: unknown, address?: StateAddress): void {
  let map = group.maps.get(key);
  if (value === undefined) {
    if (!map) return;
    map.values.delete(userKeyId);
    map.keys.delete(userKeyId);
    if (map.values.size === 0) {
      group.maps.delete(key);
      detachIfEmpty(group);
    }
    return;
  }
  if (address !== undefined && map?.values.has(userKeyId) !== true) mapEntryKey(baseKey(address), userKeyId, address);
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
