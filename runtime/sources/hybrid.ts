// Sources.hybrid(bounded..., live): reads each bounded source to its end, then the last one (Flink's
// HybridSource), e.g. a file of history, then the live stream.
//
// - RecordAttributes: `{ isBacklog: true }` while in the bounded parts; at the switch the last part's own
//   first attribute (a JetStream source behind its head says backlog until it catches up), or `{ isBacklog:
//   false }` when it reports none. Only changes are reported.
// - Offsets: `{ part, inner }`: which part is being read and that part's own state; a restore resumes in
//   that part (earlier parts are not read again).
// - Each part's reader is created when the previous one ends, with the same subtask context. At a
//   parallelism above 1 the subtasks switch together (hybrid-switch.ts): one that finished a part reads
//   nothing more until every subtask finished it, as Flink's HybridSource.

import type { SourceDef, SourceReader, SourceContext, SourceSplits } from "../contracts/connectors.ts";
import type { RecordAttributes } from "../transport/frames.ts";
import { ErrorCode, WeirError } from "../core/errors.ts";
import { HybridSwitch } from "./hybrid-switch.ts";

/** How long a poll waits for the other subtasks to finish a part before it returns (the loop runs checkpoints and stops between polls). */
const SWITCH_POLL_MS = 100;

export interface HybridSourceState {
  readonly part: number;
  readonly inner: unknown;
}

export function hybridSource<T>(...parts: Array<SourceDef<T>>): SourceDef<T> {
  if (parts.length < 2) throw new WeirError(ErrorCode.InvalidOption, `Sources.hybrid: needs at least two sources (bounded ones, then the last), got ${parts.length}`);
  parts.forEach((p, i) => {
    if (typeof p?.createReader !== "function") throw new WeirError(ErrorCode.InvalidOption, `Sources.hybrid: argument ${i + 1} is not a source`);
    if (i < parts.length - 1 && !p.bounded) throw new WeirError(ErrorCode.InvalidOption, `Sources.hybrid: source ${i + 1} (${p.kind}) must be bounded; only the last may be unbounded`);
  });
  const defaults = parts.map((p) => p.defaultParallelism).filter((n): n is number => n !== undefined);
  const last = parts.length - 1;
  return {
    kind: "hybrid",
    bounded: parts[last]!.bounded,
    settings: Object.fromEntries(parts.map((p, i) => [`part ${i + 1}`, { kind: p.kind, settings: p.settings }])),
    ...(defaults.length > 0 ? { defaultParallelism: Math.min(...defaults) } : {}),
    async createReader(ctx): Promise<SourceReader<T>> {
      const restored = restoredHybrid(ctx);
      let part = restored?.part ?? 0;
      if (!Number.isInteger(part) || part < 0 || part > last) throw new WeirError(ErrorCode.Source, `Sources.hybrid: restored part ${part} does not exist (${parts.length} parts)`);
      const open = (i: number, state: unknown) => parts[i]!.createReader({ ...ctx, restoredState: state } as SourceContext);
      let reader: SourceReader<T> = await open(part, restored?.inner);
      let reported: boolean | undefined;
      let pending: RecordAttributes | undefined;
      // The current part ended here; the next opens once every subtask's has (its reader stays open meanwhile: checkpoints take its end state).
      let partEnded = false;
      const peers = ctx.parallelism > 1 && ctx.attempt !== undefined
        ? new HybridSwitch(ctx.nc, ctx.names.hybridSwitch(ctx.attempt, ctx.operatorUid), ctx.subtaskIndex, ctx.parallelism, part)
        : undefined;

      // The current part's splits (a part without any, a file, is one), so that fromSource's watermarks
      // follow each part's: a JetStream part's subtask given no subject is idle, its subjects each count.
      let generation = 0;
      const splits: SourceSplits = {
        get count() { return reader.splits?.count ?? 1; },
        ended: (k) => reader.splits?.ended(k) ?? false,
        get generation() { return generation; },
      };

      return {
        splits,
        async pollNext(maxRecords, maxWaitMs) {
          if (!partEnded) {
            const batch = await reader.pollNext(maxRecords, reader.interrupt ? maxWaitMs : undefined);
            if (batch !== null || part === last) return batch;
            partEnded = true;
            peers?.finish(part + 1);
          }
          if (peers !== undefined && !(await peers.waitForAll(SWITCH_POLL_MS))) return { values: [] };
          partEnded = false;
          const ended = reader.snapshotState?.(0);
          await reader.close();
          part++;
          reader = await open(part, parts[part]!.continueFrom?.(ended));
          generation++;
          if (part === last) pending = reader.takeAttributes?.() ?? { isBacklog: false };
          // An empty batch, so the subtask asks for the new attributes before the next part's records.
          return { values: [] };
        },
        interrupt: () => reader.interrupt?.(),
        takeAttributes() {
          let next: RecordAttributes | undefined;
          if (part < last) next = { isBacklog: true };
          else if (pending) { next = pending; pending = undefined; } else next = reader.takeAttributes?.();
          if (next === undefined || next.isBacklog === reported) return undefined;
          reported = next.isBacklog;
          return next;
        },
        snapshotState(checkpointId): HybridSourceState {
          return { part, inner: reader.snapshotState?.(checkpointId) };
        },
        async notifyCheckpointComplete(checkpointId) {
          await reader.notifyCheckpointComplete?.(checkpointId);
        },
        async close() {
          peers?.close();
          await reader.close();
        },
      };
    },
  };
}

/**
 * The part to resume in and that part's state. In a job the checkpoint hands every old subtask's
 * `{ part, inner }` (an array, in subtask order): the inner states go on as an array too, each inner
 * source taking what it needs of it (JetStream merges offsets, the positional ones take their own).
 * Subtasks switch parts together, but a checkpoint reaches each at its own moment, so they may have been
 * in different parts: then each resumes in its own, which only the same parallelism can tell (earlier
 * parts are not read again, none is skipped).
 */
function restoredHybrid(ctx: SourceContext): HybridSourceState | undefined {
  const raw = ctx.restoredState;
  if (raw === undefined || raw === null) return undefined;
  if (!Array.isArray(raw)) return checkedState(raw, ctx);
  const states = raw.map((s) => checkedState(s, ctx));
  if (states.length === 0) return undefined;
  const partsSeen = new Set(states.map((s) => s.part));
  if (partsSeen.size === 1) return { part: states[0]!.part, inner: states.map((s) => s.inner) };
  if (states.length !== ctx.parallelism) {
    throw new WeirError(ErrorCode.Source, `Sources.hybrid (${ctx.operatorName}) was checkpointed while its ${states.length} subtasks were in different parts (${[...partsSeen].sort().join(", ")}); restore it at parallelism ${states.length}`);
  }
  const part = states[ctx.subtaskIndex]!.part;
  return { part, inner: states.map((s) => (s.part === part ? s.inner : undefined)) };
}

function checkedState(s: unknown, ctx: SourceContext): HybridSourceState {
  const st = s as Partial<HybridSourceState> | null;
  if (typeof st !== "object" || st === null || typeof st.part !== "number") {
    throw new WeirError(ErrorCode.Source, `Sources.hybrid (${ctx.operatorName}): restored state ${JSON.stringify(s)?.slice(0, 80)} is not { part, inner }`);
  }
  return st as HybridSourceState;
}
