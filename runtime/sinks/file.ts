// Sinks.file(path, { format?: "jsonl" | "lines" }): appends one line per record ("jsonl", the default:
// JSON; "lines": strings as they are, anything else as JSON; a bytes record is its base64 as a JSON
// string in "jsonl" and its UTF-8 text in "lines"). Lines are gathered into chunks of
// `CHUNK_CHARS` and appended with one write each (`write` returns that write's promise: backpressure);
// whatever is gathered is also written `lingerMs` (default 200) after it started, so a live job's file
// keeps up. `flush()` writes the rest and fsyncs (durable at checkpoints and at the end); `close()`
// flushes. Parallelism 1 by default; more subtasks append whole chunks to the same file (O_APPEND).
// A directory (a path ending in "/", or an existing directory) gets part files instead, one set per
// subtask, committed at the end or at checkpoints (file-parts.ts); then the job's parallelism is the default.

import { mkdir, open, type FileHandle } from "node:fs/promises";
import { statSync } from "node:fs";
import { openPartWriter } from "./file-parts.ts";
import { LineBatcher } from "./line-batcher.ts";
import { dirname } from "node:path";
import * as t from "io-ts";
import type { SinkDef, SinkWriter } from "../contracts/connectors.ts";
import { ErrorCode, WeirError, messageOf } from "../core/errors.ts";
import { NonNegativeInt, decodeOptions } from "../core/validation.ts";
import { rejectRecord } from "./payload.ts";

export interface FileSinkOptions {
  readonly format?: "jsonl" | "lines";
  readonly lingerMs?: number;
}

const Options = t.partial({ format: t.keyof({ jsonl: null, lines: null }), lingerMs: NonNegativeInt });

/** A path ending in "/" or naming an existing directory: one part file per subtask (file-parts.ts). */
function writesParts(path: string): boolean {
  if (path.endsWith("/")) return true;
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

export function fileSink<T>(path: string, options: FileSinkOptions = {}): SinkDef<T> {
  if (typeof path !== "string" || path.length === 0) throw new WeirError(ErrorCode.InvalidOption, "Sinks.file: path must be a non-empty string");
  decodeOptions(Options, options, `Sinks.file("${path}")`, `Sinks.file("${path}") options`);
  const json = (options.format ?? "jsonl") === "jsonl";
  const lingerMs = options.lingerMs ?? 200;
  const fail = (doing: string, e: unknown) => new WeirError(ErrorCode.Sink, `Sinks.file: ${doing} "${path}" failed: ${messageOf(e)}`, { cause: e });
  if (writesParts(path)) {
    return { kind: "file", settings: { path, ...options }, createWriter: (ctx) => openPartWriter<T>(path, { json, lingerMs }, ctx) };
  }
  return {
    kind: "file",
    defaultParallelism: 1,
    settings: { path, ...options },
    async createWriter(ctx): Promise<SinkWriter<T>> {
      let fh: FileHandle;
      try {
        await mkdir(dirname(path), { recursive: true });
        fh = await open(path, "a");
      } catch (e) {
        throw fail("opening", e);
      }
      let closed = false;
      const batch = new LineBatcher(json, lingerMs, (chunk) => fh.write(chunk).then(() => {}), (e) => fail("appending to", e), (v, reason) => rejectRecord(ctx, v, reason));

      return {
        write: (value) => batch.add(value),
        async flush() {
          await batch.writeOut();
          if (batch.failure) throw batch.failure;
          try { await fh.datasync(); } catch (e) { throw fail("syncing", e); }
        },
        async close() {
          if (closed) return;
          closed = true;
          batch.stopTimer();
          try {
            await batch.writeOut();
            if (batch.failure) throw batch.failure;
          } finally {
            await fh.close().catch(() => {});
          }
        },
      };
    },
  };
}
