// Sinks.file into a directory (Flink's FileSink, row format): each subtask writes its own part files,
// `<dir>/part-<subtask>-<n>.<jsonl|txt>`, first under a hidden in-progress name
// (`.part-<subtask>-<n>.inprogress`, which readers of the directory skip) and renamed when committed:
// - without checkpoints, at the end of input (a failed or cancelled job deletes its in-progress files);
// - with checkpoints, a checkpoint closes the current part (flushed and synced) and the part is renamed
//   once the checkpoint completes; a restore commits the parts of the restored checkpoint and deletes
//   in-progress files written after it. So each record lands in exactly one committed part.
// n counts up per subtask, after the parts already in the directory, so reruns never overwrite.

import { mkdir, open, readdir, rename, rm, type FileHandle } from "node:fs/promises";
import { join } from "node:path";
import type { SinkContext, SinkWriter } from "../contracts/connectors.ts";
import { ErrorCode, WeirError, messageOf } from "../core/errors.ts";
import { LineBatcher } from "./line-batcher.ts";
import { rejectRecord } from "./payload.ts";

const PART = /^\.?part-(\d+)-(\d+)(?:\.jsonl|\.txt)?(\.inprogress)?$/;

/** Part files a checkpoint closed, committed when it completes. */
export interface FilePartsState {
  readonly pending: readonly string[];
}

interface Part { readonly n: number; readonly fh: FileHandle; readonly tmp: string; readonly final: string }

export async function openPartWriter<T>(dir: string, options: { json: boolean; lingerMs: number }, ctx: SinkContext): Promise<SinkWriter<T>> {
  const fail = (doing: string, e: unknown) => new WeirError(ErrorCode.Sink, `Sinks.file: ${doing} in "${dir}" failed: ${messageOf(e)}`, { cause: e });
  const me = ctx.subtaskIndex;
  const ext = options.json ? "jsonl" : "txt";
  const names = (n: number) => ({ tmp: join(dir, `.part-${me}-${n}.inprogress`), final: join(dir, `part-${me}-${n}.${ext}`) });
  let next = 0;
  try {
    await mkdir(dir, { recursive: true });
    // A restore commits the parts its checkpoint closed (whichever old subtask wrote them)...
    for (const old of ctx.restoredState ?? []) {
      if (old.index % ctx.parallelism !== me) continue;
      for (const tmp of (old.state as FilePartsState | undefined)?.pending ?? []) await commit(tmp);
    }
    // ...and what is still in progress for these subtask indices was written after it, or by a run that
    // died: never to be committed.
    for (const name of await readdir(dir)) {
      const m = PART.exec(name);
      if (!m) continue;
      const index = Number(m[1]);
      if (m[3] && index % ctx.parallelism === me) await rm(join(dir, name), { force: true });
      else if (index === me) next = Math.max(next, Number(m[2]) + 1);
    }
  } catch (e) {
    throw fail("opening part files", e);
  }

  async function commit(tmp: string): Promise<void> {
    const m = PART.exec(tmp.slice(tmp.lastIndexOf("/") + 1));
    if (!m) return;
    const final = join(dir, `part-${m[1]}-${m[2]}.${ext}`);
    await rename(tmp, final).catch((e: NodeJS.ErrnoException) => { if (e.code !== "ENOENT") throw e; }); // committed before
  }

  let part: Part | undefined;
  let ended = false;
  let closed = false;
  /** Closed parts waiting for their checkpoint, by checkpoint id. */
  const pending: Array<{ checkpointId: number; part: Part }> = [];

  /** Only called from the `writing` chain, so one part is opened at a time. */
  const current = async (): Promise<Part> => {
    if (part) return part;
    const n = next++;
    const { tmp, final } = names(n);
    return (part = { n, tmp, final, fh: await open(tmp, "w") });
  };

  const batch = new LineBatcher(options.json, options.lingerMs, async (chunk) => { await (await current()).fh.write(chunk); }, (e) => fail("writing a part file", e), (v, reason) => rejectRecord(ctx, v, reason));

  /** Closes the current part (everything queued so far is in it, synced); the next record opens another. */
  const closePart = (): Promise<Part | undefined> => {
    const done = batch.writeOut().then(async () => {
      const p = part;
      part = undefined;
      if (!p) return undefined;
      try { await p.fh.datasync(); } finally { await p.fh.close().catch(() => {}); }
      return p;
    });
    batch.writing = done.then(() => undefined, () => undefined);
    return done;
  };

  return {
    write: (value) => batch.add(value),
    snapshotState(checkpointId: number) {
      const closing = closePart();
      return closing.then((p) => {
        if (batch.failure) throw batch.failure;
        if (p) pending.push({ checkpointId, part: p });
        return { pending: pending.map((x) => x.part.tmp) } satisfies FilePartsState;
      });
    },
    async notifyCheckpointComplete(checkpointId: number) {
      while (pending.length > 0 && pending[0]!.checkpointId <= checkpointId) {
        const { part: p } = pending.shift()!;
        try { await rename(p.tmp, p.final); } catch (e) { throw fail(`committing ${p.final}`, e); }
      }
    },
    /** The end of input: every record is written and synced; close() commits. */
    async flush() {
      await batch.writeOut();
      if (batch.failure) throw batch.failure;
      ended = true;
    },
    async close() {
      if (closed) return;
      closed = true;
      batch.stopTimer();
      if (!ended) {
        // Failed or cancelled: what was not checkpointed is never committed.
        batch.discard();
        const p = await closePart().catch(() => undefined) ?? part;
        if (p) await rm(p.tmp, { force: true }).catch(() => {});
        return;
      }
      const last = await closePart();
      if (batch.failure) throw batch.failure;
      for (const { part: p } of pending.splice(0)) await commit(p.tmp);
      if (last) {
        try { await rename(last.tmp, last.final); } catch (e) { throw fail(`committing ${last.final}`, e); }
      }
    },
  };
}
