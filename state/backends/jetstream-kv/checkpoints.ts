// Checkpoints of the KV backend (durability "checkpoint", docs/state.md):
//  - between checkpoints, written entries stay in the cache (dirty, never evicted, never written to KV);
//  - snapshot(N) captures, synchronously, every entry changed since the last COMPLETED checkpoint (the
//    current epoch plus the captures of checkpoints still pending), then appends them to the changelog
//    stream as large messages, one subject per key group: durable, but not visible in KV;
//  - notifyCheckpointComplete(N) adds N's capture to the committed-but-unmaterialized set; when that is
//    due (materializeIntervalMs elapsed, or half the dirty budget used) it materializes the set into KV
//    (pipelined puts), then records per key group that KV holds checkpoint N ("materialized" markers), and
//    the entries become clean. Materializing less often than checkpointing writes a hot key once per
//    interval instead of once per checkpoint; checkpoints list every delta since the last materialization;
//  - restore(snapshots) replays the listed deltas, oldest first, into KV: KV then holds exactly the state
//    of the newest one. Nothing uncommitted ever reaches KV, so there is nothing to undo after a crash.

import type { StateSnapshot } from "../../contracts.ts";
import { StateRestoreError } from "../../errors.ts";
import type { KeyGroupRange } from "../../key-groups.ts";
import { appendedSnapshot, type ChangelogMessage, type ChangelogStream } from "../changelog/stream.ts";
import type { DeltaEntry } from "../changelog/format.ts";
import { EntryKind, type CacheEntry, type StateCache } from "./cache.ts";
import { entryJson } from "./entry-json.ts";
import { runPool, writeWave } from "./entry-writes.ts";
import { encodeToken } from "./keys.ts";
import type { KvPipe } from "./pipe.ts";
import type { RemoteValues } from "./remote-values.ts";

/** One entry as a snapshot captured it. */
interface Captured {
  readonly entry: CacheEntry;
  readonly version: number;
  readonly json: string | undefined;
}

export interface KvCheckpointsHost {
  readonly cache: StateCache;
  readonly remote: RemoteValues;
  readonly pipe: KvPipe;
  readonly keyGroupRange: KeyGroupRange;
  readonly writeConcurrency: number;
  /** Whether the committed captures (this many entries) should be written to KV now. */
  materializeDue(committedEntries: number, msSinceLast: number): boolean;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export class KvCheckpoints {
  /** Entries changed since the last snapshot. */
  private epoch = new Set<CacheEntry>();
  /** Captures of snapshots taken and not yet completed or aborted, by checkpoint id. */
  private readonly pending = new Map<number, Captured[]>();
  /** Entry → its newest capture from a completed checkpoint, not yet written to KV. */
  private committed = new Map<CacheEntry, Captured>();
  private committedThrough = 0;
  private lastMaterializeAt = Date.now();
  /** Changelog messages appended (or replayed) per checkpoint: truncated once KV holds that checkpoint. */
  private readonly appended = new Map<number, readonly ChangelogMessage[]>();
  /** Materializations run one after another, in checkpoint order. */
  private materialized: Promise<void> = Promise.resolve();
  private materializing = false;
  /** The materialization that starts once the running one ended (every caller meanwhile waits for it). */
  private next: Promise<number> | undefined;
  private lastMaterialized = 0;
  /** Entries the running materialization writes. */
  private runningEntries = 0;
  private pressureSignalled = false;

  constructor(
    private readonly host: KvCheckpointsHost,
    private readonly changelog: ChangelogStream,
    private readonly owner: string,
    private readonly changelogFor: (owner: string) => ChangelogStream,
    private readonly onPressure: (() => void) | undefined,
  ) {}

  /** An entry was written: part of the next snapshot. */
  changed(e: CacheEntry): void {
    this.epoch.add(e);
  }

  /** Over the dirty budget: nothing may be flushed before a checkpoint, so ask for one (once per epoch). */
  overBudget(): void {
    if (this.pressureSignalled) return;
    this.pressureSignalled = true;
    this.onPressure?.();
  }

  snapshot(checkpointId: number): Promise<StateSnapshot> {
    // Capture now, synchronously: nothing processed after the barrier may leak into this checkpoint.
    const entries = new Set(this.epoch);
    // A clean entry of a pending capture is in KV as it is now (a completed checkpoint wrote it), and may
    // no longer be the cache's entry for its key (dropped or evicted since): captured again, its old value
    // would compete with the newer entry of the same key.
    for (const captured of this.pending.values()) for (const c of captured) if (c.entry.dirty) entries.add(c.entry);
    const captured: Captured[] = [];
    const byKeyGroup = new Map<number, DeltaEntry[]>();
    for (const e of entries) {
      const json = entryJson(e);
      captured.push({ entry: e, version: e.version, json });
      let group = byKeyGroup.get(e.keyGroup);
      if (group === undefined) byKeyGroup.set(e.keyGroup, (group = []));
      group.push({ key: e.key, json });
    }
    this.pending.set(checkpointId, captured);
    this.epoch = new Set();
    this.pressureSignalled = false;
    return this.changelog.append(checkpointId, byKeyGroup).then((r) => {
      this.appended.set(checkpointId, r.messages);
      return appendedSnapshot(checkpointId, "delta", this.host.keyGroupRange, this.changelog.stream, this.owner, r, captured.length);
    });
  }

  /**
   * Checkpoint `checkpointId` committed. Resolves with the newest checkpoint KV holds (deltas up to it need
   * not be replayed any more): `checkpointId` once materialized when that is due, an older one otherwise.
   */
  complete(checkpointId: number): Promise<number> {
    const captured = this.pending.get(checkpointId);
    // Earlier pending captures are contained in this one (it re-captured them): they are done too.
    for (const id of [...this.pending.keys()]) if (id <= checkpointId) this.pending.delete(id);
    if (captured === undefined) return this.materialized.then(() => this.lastMaterialized);
    for (const c of captured) this.committed.set(c.entry, c);
    this.committedThrough = Math.max(this.committedThrough, checkpointId);
    if (!this.host.materializeDue(this.committed.size, Date.now() - this.lastMaterializeAt)) return Promise.resolve(this.lastMaterialized);
    return this.materializeCommitted();
  }

  /**
   * Writes every committed capture to KV; resolves with the checkpoint KV then holds. One materialization
   * at a time: captures committed while one runs wait in `committed`, where a newer capture of an entry
   * replaces the older, and go together in the next. (Queueing each set behind the running one kept every
   * set alive when KV writes were slower than checkpoints: the 2000 records/s soak grew 20 MB a minute.)
   */
  materializeCommitted(): Promise<number> {
    if (this.materializing) {
      this.next ??= this.materialized.then(() => { this.next = undefined; return this.materializeCommitted(); });
      return this.next;
    }
    if (this.committed.size === 0) return this.materialized.then(() => this.lastMaterialized);
    const captured = [...this.committed.values()];
    const through = this.committedThrough;
    this.committed = new Map();
    this.lastMaterializeAt = Date.now();
    this.materializing = true;
    this.runningEntries = captured.length;
    const run = this.materialized.then(() => this.materialize(through, captured)).finally(() => { this.materializing = false; });
    this.materialized = run.catch(() => {});
    return run.then(() => through);
  }

  /**
   * When materializations fall behind (more committed entries wait than the running one writes, and more
   * than `floor`): a promise for the running one's end. Writers wait on it, so processing slows to what KV
   * takes instead of holding ever more captures in memory (the 2,000 records/s soak grew ~17 MB a minute).
   * Waiting is safe: a materialization needs no barrier, only KV.
   */
  behind(floor: number): Promise<void> | undefined {
    if (!this.materializing || this.committed.size <= Math.max(this.runningEntries, floor)) return undefined;
    return this.materialized;
  }

  aborted(checkpointId: number): void {
    const captured = this.pending.get(checkpointId);
    if (captured === undefined) return;
    this.pending.delete(checkpointId);
    for (const c of captured) if (c.entry.dirty) this.epoch.add(c.entry); // clean: in KV already (see snapshot)
  }

  /** Resolves when every materialization started so far has finished. */
  idle(): Promise<void> {
    return this.materialized;
  }

  private async materialize(checkpointId: number, captured: Captured[]): Promise<void> {
    // Clean: an earlier materialization wrote this entry as it is now, so KV holds this capture or a newer
    // one (and the entry may since have left the cache, a newer one taking its key): nothing to write.
    const write = (c: Captured): Captured | undefined => (c.entry.dirty ? c : undefined);
    const { remote, cache } = this.host;
    // Values before map indexes, as in a flush (an index never names a value not yet written).
    await writeWave(remote, cache, captured.filter((c) => c.entry.kind === EntryKind.Value), this.host.writeConcurrency, write);
    await writeWave(remote, cache, captured.filter((c) => c.entry.kind === EntryKind.Index), this.host.writeConcurrency, write);
    await this.writeMarkers(checkpointId);
    this.lastMaterialized = checkpointId;
    this.host.cache.evict();
    await this.truncateThrough(checkpointId);
  }

  /** Drops the changelog messages of checkpoints up to `checkpointId` (KV holds it: never replayed again). */
  private async truncateThrough(checkpointId: number): Promise<void> {
    const through = new Map<number, number>();
    for (const [id, messages] of this.appended) {
      if (id > checkpointId) continue;
      this.appended.delete(id);
      for (const [kg, seq] of messages) if (seq > (through.get(kg) ?? 0)) through.set(kg, seq);
    }
    if (through.size > 0) await this.changelog.truncate(through);
  }

  // ------------------------------------------------------------------ restore

  /**
   * Makes KV hold exactly the state of the newest of `snapshots` for this backend's key groups, by
   * replaying every listed delta oldest first. Refuses when KV already holds a newer checkpoint.
   */
  async restore(snapshots: readonly StateSnapshot[]): Promise<void> {
    const range = this.host.keyGroupRange;
    const mine = snapshots.filter((s) => s.keyGroupRange.start <= range.end && s.keyGroupRange.end >= range.start);
    if (mine.length === 0) return;
    for (const s of mine) {
      if (s.kind === "full") throw new StateRestoreError(`checkpoint ${s.checkpointId} was taken with the heap state backend; it cannot be restored into jetstream-kv`);
    }
    const target = Math.max(...mine.map((s) => s.checkpointId));
    const materialized = await this.readMarkers();
    const ahead = [...materialized].filter(([, id]) => id > target);
    if (ahead.length > 0) {
      throw new StateRestoreError(
        `cannot restore checkpoint ${target}: KV already holds checkpoint ${ahead[0]![1]} for key group ${ahead[0]![0]} (state is not versioned in KV; restore the latest checkpoint, or start without state)`,
      );
    }
    // A key group's marker says KV holds that checkpoint for it: only later deltas need replaying (earlier
    // ones may have been truncated from the changelog already).
    const merged = new Map<string, string | undefined>();
    for (const s of [...mine].sort((a, b) => a.checkpointId - b.checkpointId)) {
      const messages = s.changelog.messages ?? [];
      const replay = (kg: number) => range.contains(kg) && s.checkpointId > (materialized.get(kg) ?? 0);
      await this.changelogFor(s.changelog.owner ?? this.owner).read(s.checkpointId, messages, replay, merged);
    }
    await runPool([...merged], this.host.writeConcurrency, async ([key, json]) => {
      if (json === undefined) await this.host.remote.remove(key, undefined);
      else await this.host.remote.write(key, encoder.encode(json), undefined);
    });
    await this.writeMarkers(target);
    this.lastMaterialized = target;
    // What was replayed is in KV now: its messages go with the next truncation.
    for (const s of mine) {
      if ((s.changelog.owner ?? this.owner) !== this.owner) continue;
      this.appended.set(s.checkpointId, (s.changelog.messages ?? []).filter(([kg]) => range.contains(kg)));
    }
    await this.truncateThrough(target);
  }

  private markerKey(keyGroup: number): string {
    return `/m.${encodeToken(this.owner)}.${keyGroup}`;
  }

  private async writeMarkers(checkpointId: number): Promise<void> {
    const body = encoder.encode(String(checkpointId));
    await Promise.all([...this.host.keyGroupRange].map((g) => this.host.pipe.put(this.markerKey(g), body)));
  }

  /** Key group → checkpoint last materialized into KV (groups never materialized are left out). */
  private async readMarkers(): Promise<Map<number, number>> {
    const out = new Map<number, number>();
    await Promise.all([...this.host.keyGroupRange].map(async (g) => {
      const data = await this.host.pipe.get(this.markerKey(g));
      if (data !== undefined) out.set(g, Number(decoder.decode(data)));
    }));
    return out;
  }
}
