// Timers are keyed state (as in Flink): the timers of each key group of a keyed operator are one entry
// of the keyed state backend, so they travel with the rest of the keyed state: in the changelog and KV
// (jetstream-kv) or the full snapshot (heap), restored per key group, following their keys when a job
// resumes at another parallelism. A checkpoint rewrites only the groups whose timers changed since the
// previous one, each whole: with timers on many keys of a group its cost grows with them, not with the
// change (`npm run bench timers`; README, known gaps).

import type { KeyedStateBackend, StateAddress, StateRequest } from "../../../state/contracts.ts";
import type { KeyGroupRange } from "../../../state/key-groups.ts";
import { stateRequest } from "../../../state/requests.ts";
import { ErrorCode, WeirError } from "../../core/errors.ts";
import type { InternalTimerService, Timer } from "./timer-service.ts";

/**
 * The entry's state name and key id. No user state can share its address: a user key's id is canonical
 * JSON, and "*" is not JSON.
 */
export const TIMER_STATE = "/timers";
const TIMER_KEY_ID = "*";

/** One key group's timers as stored: per key, its key id and the timestamps of its timers. */
interface StoredTimers {
  readonly event?: ReadonlyArray<readonly [string, ...number[]]>;
  readonly processing?: ReadonlyArray<readonly [string, ...number[]]>;
}

function address(operator: string, keyGroup: number): StateAddress {
  return { operator, state: TIMER_STATE, keyGroup, keyId: TIMER_KEY_ID };
}

function encodeQueue(timers: Iterable<Timer>): Array<[string, ...number[]]> | undefined {
  const byKey = new Map<string, [string, ...number[]]>();
  for (const t of timers) {
    const row = byKey.get(t.keyId);
    if (row === undefined) byKey.set(t.keyId, [t.keyId, t.timestamp]);
    else row.push(t.timestamp);
  }
  return byKey.size > 0 ? [...byKey.values()] : undefined;
}

/** The stored value of `keyGroup`'s timers; undefined when it has none (the entry is deleted). */
function encodeGroup(service: InternalTimerService, keyGroup: number): StoredTimers | undefined {
  const event = encodeQueue(service.eventTime.ofGroup(keyGroup));
  const processing = encodeQueue(service.processingTime.ofGroup(keyGroup));
  if (event === undefined && processing === undefined) return undefined;
  return { ...(event ? { event } : {}), ...(processing ? { processing } : {}) };
}

/** Runs `requests` as one batch; fails with the first request's error, if any failed. */
async function runBatch(backend: KeyedStateBackend, requests: StateRequest[]): Promise<unknown[]> {
  const results: unknown[] = new Array(requests.length);
  let failure: { error: unknown } | undefined;
  await backend.executeBatch(requests.map((request, i) => ({
    request,
    resolve: (v: unknown) => { results[i] = v; },
    reject: (e: unknown) => { failure ??= { error: e }; },
  })));
  if (failure) throw failure.error;
  return results;
}

/**
 * Writes the timers of every key group whose timers changed since the last call into `backend`, before
 * the checkpoint captures the backend's state. Key groups whose write fails are written again next time.
 */
export function writeChangedTimers(service: InternalTimerService, backend: KeyedStateBackend, operator: string, operatorName: string): Promise<void> | undefined {
  const groups = service.takeChangedGroups();
  if (groups.length === 0) return undefined;
  const requests = groups.map((g) => stateRequest.put(address(operator, g), encodeGroup(service, g)));
  return runBatch(backend, requests).then(() => undefined, (e: unknown) => {
    service.markGroupsChanged(groups);
    throw new WeirError(ErrorCode.Checkpoint, `operator "${operatorName}": storing its timers failed: ${(e as Error)?.message ?? String(e)}`, { cause: e });
  });
}

/** Loads the stored timers of the key groups of `range` (after the backend restored a checkpoint). */
export async function restoreTimers(service: InternalTimerService, backend: KeyedStateBackend, operator: string, operatorName: string, range: KeyGroupRange): Promise<{ event: number; processing: number }> {
  const groups = [...range];
  const values = await runBatch(backend, groups.map((g) => stateRequest.get(address(operator, g))));
  const counts = { event: 0, processing: 0 };
  groups.forEach((keyGroup, i) => {
    const stored = values[i];
    if (stored === undefined) return;
    const malformed = () => new WeirError(ErrorCode.Checkpoint, `operator "${operatorName}": the timers stored for key group ${keyGroup} are malformed (state "${TIMER_STATE}")`);
    if (typeof stored !== "object" || stored === null) throw malformed();
    const { event, processing } = stored as StoredTimers;
    for (const [rows, queue, kind] of [[event, service.eventTime, "event"], [processing, service.processingTime, "processing"]] as const) {
      if (rows === undefined) continue;
      if (!Array.isArray(rows)) throw malformed();
      for (const row of rows) {
        if (!Array.isArray(row) || typeof row[0] !== "string") throw malformed();
        const keyId = row[0];
        let key: unknown;
        try { key = JSON.parse(keyId); } catch (e) { throw new WeirError(ErrorCode.Checkpoint, malformed().message, { cause: e }); }
        for (let j = 1; j < row.length; j++) {
          const timestamp = row[j];
          if (typeof timestamp !== "number") throw malformed();
          if (queue.add({ timestamp, keyId, key, keyGroup })) counts[kind]++;
        }
      }
    }
  });
  // What was just loaded is what the backend holds: nothing to store again.
  service.takeChangedGroups();
  return counts;
}
