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
import { serialize, tooLarge, valueJson } from "./jetstream-kv/entry-json.ts";
import { DEFAULT_STATE_BACKEND_CONFIG } from "../config.ts";

interface HeapMap {
  readonly keys: OrderedKeys;
  readonly values: Map<string, unknown>;
}

/**
 * One state of one operator in one key group: plain values (and lists) by key id, and maps. Removed from
 * its key group once empty (a window's state is named per window: kept, every fired window would leave
 * one behind); handles that memoized it check `attached` and look the namespace up again.
 */
interface Namespace {
  readonly operator: string;
  readonly state: string;
  readonly values: Map<string, ValueCell>;
  readonly maps: Map<string, HeapMap>;
  readonly group: KeyGroupState;
  attached: boolean;
}

/**
 * A key's plain value (or list). The address of a key's state handle keeps its cell (StateAddress.keyMemo),
 * so the key's records read and write it without a Map lookup. A cell is `live` while it is the one in
 * its namespace's `values` under its key (a value present); one read absent, or whose value was removed,
 * is not in the map and is looked up again before use.
 */
class ValueCell {
  value: unknown = undefined;
  live = false;
  /** The length of the value's JSON when known (a list's, for the size check of an append), else -1. */
  jsonLength = -1;
  constructor(readonly ns: Namespace, readonly key: string) {}
}

/** A key's first cell: its KV key checked once, as the KV backend would refuse it (a job passing on the heap must not fail on KV). */
function newCell(ns: Namespace, address: StateAddress): ValueCell {
  checkBaseKey(address);
  return new ValueCell(ns, address.keyId);
}

/**
 * The state of one key group: operator → state name → namespace. Nested maps, so that a request looks
 * up strings that already exist (and whose hashes are cached) instead of building a composite key.
 */
type KeyGroupState = Map<string, Map<string, Namespace>>;

function namespaceOf(group: KeyGroupState, operator: string, state: string): Namespace {
  let byState = group.get(operator);
  if (byState === undefined) group.set(operator, (byState = new Map()));
  let ns = byState.get(state);
  if (ns === undefined) byState.set(state, (ns = { operator, state, values: new Map(), maps: new Map(), group, attached: true }));
  return ns;
}

/** The namespace if it exists (a read of absent state creates none). */
function existingNamespace(group: KeyGroupState, operator: string, state: string): Namespace | undefined {
  return group.get(operator)?.get(state);
}

/** An emptied namespace leaves its key group. */
function detachIfEmpty(ns: Namespace): void {
  if (ns.values.size > 0 || ns.maps.size > 0 || !ns.attached) return;
  ns.attached = false;
  const byState = ns.group.get(ns.operator);
  if (byState?.get(ns.state) !== ns) return;
  byState.delete(ns.state);
  if (byState.size === 0) ns.group.delete(ns.operator);
}

function* namespaces(group: KeyGroupState): Iterable<Namespace> {
  for (const byState of group.values()) yield* byState.values();
}

const DEFAULT_SCAN_LIMIT = 256;

export class HeapKeyedStateBackend implements KeyedStateBackend {
  readonly kind = StateBackendKind.Heap;
  private readonly groups: KeyGroupState[];
  private closed = false;
  private batches = 0;
  private requests = 0;
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
    return existingNamespace(this.groups[address.keyGroup - this.keyGroupRange.start]!, address.operator, address.state)?.values.get(address.keyId)?.value === undefined;
  }

  private apply(request: StateRequest): unknown {
    if (this.closed) throw closedError("heap");
    this.requests++;
    const address = request.address;
    checkShape(request);
    const userKeyId = address.userKeyId;
    const kind = request.kind;
    if (userKeyId === undefined && kind !== T.Scan && kind !== T.ClearMap) {
      const cell = this.cellOf(address);
      switch (kind) {
        case T.Get:
          return cell.live ? snapshotValue(cell.value) : undefined;
        case T.Put:
          if (request.value === undefined) drop(cell);
          else store(cell, request.value, valueJson(request.value, address, this.maxValueBytes)); // checked before anything changes
          return undefined;
        case T.Append:
          this.append(cell, address, request.value);
          return undefined;
      }
    }
    // Map entries, and Scan and ClearMap (a whole map): the namespace is memoized instead.
    const memo = address.keyOwner === this ? address.keyMemo : undefined;
    const group = memo !== undefined && !(memo instanceof ValueCell) && (memo as Namespace).attached ? (memo as Namespace) : this.resolve(address);
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
  private append(cell: ValueCell, address: StateAddress, values: readonly unknown[]): void {
    const added = serialize(values, address, this.maxValueBytes).length;
    const current = cell.live && Array.isArray(cell.value) ? (cell.value as unknown[]) : undefined;
    if (current === undefined || current.length === 0) {
      store(cell, values.slice(), undefined);
      cell.jsonLength = added;
      return;
    }
    // "[a,b]" + "[c]" = "[a,b,c]"
    const length = (cell.jsonLength >= 0 ? cell.jsonLength : toStateJson(current)!.length) + added - 1;
    if (length > this.maxValueBytes) throw tooLarge(address, length, this.maxValueBytes);
    for (let i = 0; i < values.length; i++) current.push(values[i]); // no spread: a huge addAll would overflow the stack
    cell.jsonLength = length;
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

  /** The cell of a plain-value address: memoized on it while live, else the one in the map, else a new (not live) one. */
  private cellOf(address: StateAddress): ValueCell {
    const memo = address.keyOwner === this && address.keyMemo instanceof ValueCell ? address.keyMemo : undefined;
    if (memo !== undefined && memo.live) return memo;
    const ns = memo !== undefined && memo.ns.attached ? memo.ns : this.namespaceFor(address);
    const cell = ns.values.get(address.keyId) ?? (memo?.ns === ns ? memo : newCell(ns, address));
    address.keyOwner = this;
    address.keyMemo = cell;
    return cell;
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
        for (const [keyId, cell] of ns.values) out.push({ key: JSON.stringify([keyGroup, ns.operator, ns.state, keyId]), json: toStateJson(cell.value) });
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
      if (userKeyId === undefined) store(ns.values.get(keyId) ?? new ValueCell(ns, keyId), fromStateJson(json), json);
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
        entries += ns.values.size;
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

/** A value present: the cell holds it and is the one in its namespace's map. */
function store(cell: ValueCell, value: unknown, json: string | undefined): void {
  cell.value = value;
  cell.jsonLength = json === undefined ? -1 : json.length;
  if (!cell.live) {
    cell.live = true;
    cell.ns.values.set(cell.key, cell);
  }
}

/** The value removed: out of the map, so that removed keys cost nothing. */
function drop(cell: ValueCell): void {
  if (!cell.live) return;
  cell.live = false;
  cell.value = undefined;
  cell.ns.values.delete(cell.key);
  detachIfEmpty(cell.ns);
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
