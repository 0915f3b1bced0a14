// Sources.file(path, { format: "jsonl" | "csv" | "lines", codec? }): a bounded source reading a file as a
// stream (never loaded whole): each pollNext turns one read chunk into one batch. `path` may also be a
// directory (its files) or a glob (file-list.ts): then the files are split across the source's subtasks
// (file k of the sorted list read by subtask k % parallelism), each read whole by one subtask.
//
// - "jsonl": one JSON value per line (blank lines skipped); "lines": each line as a string (a trailing
//   "\r" removed); "csv": the first row is the header and each row becomes an object keyed by it, with
//   every field a string: numbers stay strings unless the codec converts them (e.g. a `t.Type` that
//   decodes "42" to 42; the codec's output is the record). `header: false` gives arrays of strings.
// - A line that is not JSON, a CSV row with the wrong number of fields, or a record the codec rejects goes
//   to the dead letters with its line number (1-based); reading goes on.
// - One file: parallelism 1 by default; with more subtasks, subtask 0 reads the file and the others end at
//   once. Several files: the job's parallelism by default.
// - Offsets: `{ path, line, byte }`, or `{ files: { [path]: { line, byte, done? } } }` for several files
//   (jsonl/lines resume at the byte offset; csv re-parses and skips to the line). Positions are by path, so
//   a restore at another parallelism resumes each file where it was.
// - A missing or unreadable file fails createReader with one line naming the path.

import { createReadStream, type ReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import * as t from "io-ts";
import { parse, type Parser } from "csv-parse";
import type { SourceDef, SourceReader, SourceContext } from "../contracts/connectors.ts";
import { ErrorCode, WeirError, messageOf } from "../core/errors.ts";
import { decodeOptions } from "../core/validation.ts";
import { listFiles, namesManyFiles } from "./file-list.ts";
import { REJECTED, assertCodec, lineDecoder, valueDecoder, type Codec } from "./decode.ts";

export const FileFormat = { Jsonl: "jsonl", Csv: "csv", Lines: "lines" } as const;
export type FileFormat = (typeof FileFormat)[keyof typeof FileFormat];

export interface FileSourceOptions<T> {
  readonly format: FileFormat;
  readonly codec?: Codec<T>;
  /** CSV only: the first row names the columns (default true). */
  readonly header?: boolean;
  /** CSV only: the field delimiter (default ","). */
  readonly delimiter?: string;
}

/** A file's read position; `done` once read to its end. */
export interface FilePosition {
  readonly line: number;
  readonly byte: number;
  readonly done?: boolean;
}

/** Sources.file over a directory or glob: each of the subtask's started files and its position. */
export interface MultiFileSourceState {
  readonly files: Record<string, FilePosition>;
}

export interface FileSourceState {
  readonly path: string;
  /** Last line handed out (1-based; 0 = none). */
  readonly line: number;
  /** Bytes of the file consumed (jsonl/lines). */
  readonly byte: number;
}

const Options = t.intersection([
  t.type({ format: t.keyof({ jsonl: null, csv: null, lines: null }) }),
  t.partial({ codec: t.unknown, header: t.boolean, delimiter: t.refinement(t.string, (s) => s.length === 1, "OneCharacter") }),
]);

const CHUNK_BYTES = 64 * 1024;

export function fileSource<T>(path: string, options: FileSourceOptions<T> & { readonly codec: Codec<T> }): SourceDef<T>;
export function fileSource(path: string, options: FileSourceOptions<string> & { readonly format: "lines" }): SourceDef<string>;
export function fileSource(path: string, options: FileSourceOptions<Record<string, string>> & { readonly format: "csv" }): SourceDef<Record<string, string>>;
export function fileSource<T = unknown>(path: string, options: FileSourceOptions<T>): SourceDef<T>;
export function fileSource<T = unknown>(path: string, options: FileSourceOptions<T>): SourceDef<T> {
  if (typeof path !== "string" || path.length === 0) throw new WeirError(ErrorCode.InvalidOption, "Sources.file: path must be a non-empty string");
  decodeOptions(Options, options, `Sources.file("${path}")`, `Sources.file("${path}") options`);
  assertCodec(`Sources.file("${path}")`, options.codec);
  // header and delimiter shape CSV rows only: with another format they would be ignored.
  const csvOnly = (["header", "delimiter"] as const).find((k) => options[k] !== undefined);
  if (csvOnly !== undefined && options.format !== FileFormat.Csv) {
    throw new WeirError(ErrorCode.InvalidOption, `Sources.file("${path}"): ${csvOnly} applies to format "csv" only, not "${options.format}" (it would be ignored)`);
  }
  const many = namesManyFiles(path);
  return {
    kind: "file",
    bounded: true,
    settings: { path, ...options },
    // One file: one reader. Several: the job's parallelism, each subtask reading its share of the files.
    ...(many ? {} : { defaultParallelism: 1 }),
    async createReader(ctx): Promise<SourceReader<T>> {
      const positions = restoredPositions(ctx.restoredState);
      if (!many) {
        if (ctx.subtaskIndex > 0) return { pollNext: async () => null, async close() {} };
        try {
          const st = await stat(path);
          if (!st.isFile()) throw new Error("not a regular file");
        } catch (e) {
          const why = (e as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : messageOf(e);
          throw new WeirError(ErrorCode.Source, `Sources.file: cannot read "${path}": ${why}`, { cause: e });
        }
        return openFile(path, options, ctx, positions.get(path));
      }
      let files: string[];
      try {
        files = await listFiles(path);
      } catch (e) {
        const why = (e as NodeJS.ErrnoException).code === "ENOENT" ? "no such file or directory" : messageOf(e);
        throw new WeirError(ErrorCode.Source, `Sources.file: cannot read "${path}": ${why}`, { cause: e });
      }
      return filesReader(files.filter((_, k) => k % ctx.parallelism === ctx.subtaskIndex), options, ctx, positions);
    },
  };
}

function openFile<T>(path: string, options: FileSourceOptions<T>, ctx: SourceContext, at: FilePosition | undefined): SourceReader<T> {
  return options.format === FileFormat.Csv
    ? csvReader(path, options, ctx, at?.line ?? 0)
    : lineReader(path, options, ctx, at?.line ?? 0, at?.byte ?? 0);
}

/**
 * Positions by file from a restored checkpoint: one state or every old subtask's (an array), in the
 * one-file shape (`{ path, line, byte }`) or the several-files one (`{ files }`). Keyed by path, so a
 * job restored at another parallelism finds each file's position whichever subtask now reads it.
 */
function restoredPositions(raw: unknown): Map<string, FilePosition> {
  const out = new Map<string, FilePosition>();
  const states = raw === undefined || raw === null ? [] : Array.isArray(raw) ? raw : [raw];
  for (const st of states as Array<Partial<FileSourceState> & { files?: Record<string, FilePosition> } | null>) {
    if (!st || typeof st !== "object") continue;
    if (typeof st.path === "string") out.set(st.path, { line: st.line ?? 0, byte: st.byte ?? 0 });
    for (const [file, at] of Object.entries(st.files ?? {})) out.set(file, at);
  }
  return out;
}

/** Reads `files` one after another; the state holds each started file's position (done ones marked). */
function filesReader<T>(files: string[], options: FileSourceOptions<T>, ctx: SourceContext, restored: Map<string, FilePosition>): SourceReader<T> {
  const positions = new Map<string, FilePosition>([...restored].filter(([f]) => files.includes(f)));
  let next = 0;
  let current: { path: string; reader: SourceReader<T> } | undefined;
  return {
    async pollNext(maxRecords) {
      for (;;) {
        if (!current) {
          while (next < files.length && positions.get(files[next]!)?.done) next++;
          if (next >= files.length) return null;
          const path = files[next++]!;
          current = { path, reader: openFile(path, options, ctx, positions.get(path)) };
        }
        const batch = await current.reader.pollNext(maxRecords);
        if (batch !== null) {
          positions.set(current.path, current.reader.snapshotState!(0) as FileSourceState);
          return batch;
        }
        const at = positions.get(current.path);
        positions.set(current.path, { line: at?.line ?? 0, byte: at?.byte ?? 0, done: true });
        await current.reader.close();
        current = undefined;
      }
    },
    snapshotState: (): MultiFileSourceState => ({ files: Object.fromEntries([...positions].map(([f, p]) => [f, p.done ? { line: p.line, byte: p.byte, done: true } : { line: p.line, byte: p.byte }])) }),
    async close() { await current?.reader.close(); },
  };
}

function readError(path: string, e: unknown): WeirError {
  return new WeirError(ErrorCode.Source, `Sources.file: reading "${path}" failed: ${messageOf(e)}`, { cause: e });
}

// ignoreBOM: a U+FEFF that starts a chunk or a line is data; only the file's first bytes may be its BOM (addLine).
const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** jsonl and lines: splits raw chunks at "\n" bytes (never inside a UTF-8 sequence), decodes whole lines. */
function lineReader<T>(path: string, options: FileSourceOptions<T>, ctx: SourceContext, startLine: number, startByte: number): SourceReader<T> {
  const json = options.format === FileFormat.Jsonl;
  const decode = lineDecoder(json, options.codec, `${ctx.operatorName} (file ${path})`, ctx.deadLetters);
  const stream: ReadStream = createReadStream(path, { start: startByte, highWaterMark: CHUNK_BYTES });
  const chunks = stream[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  /** Chunks of a line not ended yet: joined once its newline comes (joining per chunk was quadratic in a long line). */
  let pending: Buffer[] = [];
  let line = startLine;
  let byte = startByte;
  let ended = false;

  const origin = `${ctx.operatorName} (file ${path})`;
  const addLine = (raw: string, values: T[]) => {
    line++;
    const text = line === 1 && raw.charCodeAt(0) === 0xfeff ? raw.slice(1) : raw;
    const s = text.endsWith("\r") ? text.slice(0, -1) : text;
    if (json && s.trim() === "") return;
    const v = decode(s, line);
    if (v !== REJECTED) values.push(v);
  };
  /** Whole lines of `bytes`; a line that is not valid UTF-8 is a dead letter with its bytes (never U+FFFD in a record). */
  const batchOf = (bytes: Buffer, values: T[]) => {
    let text: string | undefined;
    try { text = strictUtf8.decode(bytes); } catch { text = undefined; }
    if (text !== undefined) {
      for (const raw of text.split("\n")) addLine(raw, values);
      return;
    }
    for (let from = 0; from <= bytes.length;) {
      const nl = bytes.indexOf(10, from);
      const end = nl < 0 ? bytes.length : nl;
      const one = bytes.subarray(from, end);
      try {
        addLine(strictUtf8.decode(one), values);
      } catch {
        line++;
        ctx.deadLetters.publish({ reason: `line ${line}: not valid UTF-8`, origin, data: Buffer.from(one), line });
      }
      from = end + 1;
    }
  };

  return {
    async pollNext() {
      if (ended) return null;
      let next: IteratorResult<Buffer>;
      try {
        next = await chunks.next();
      } catch (e) {
        throw readError(path, e);
      }
      const values: T[] = [];
      if (next.done) {
        ended = true;
        // The last line has no "\n" after it.
        const rest = Buffer.concat(pending);
        pending = [];
        if (rest.length > 0) {
          byte += rest.length;
          batchOf(rest, values);
        }
        return values.length > 0 ? { values } : null;
      }
      const chunk = next.value;
      const nl = chunk.lastIndexOf(10);
      if (nl < 0) {
        pending.push(chunk);
        return { values };
      }
      const lines = pending.length > 0 ? Buffer.concat([...pending, chunk.subarray(0, nl)]) : chunk.subarray(0, nl);
      pending = nl + 1 < chunk.length ? [chunk.subarray(nl + 1)] : [];
      byte += lines.length + 1;
      batchOf(lines, values);
      return { values };
    },
    snapshotState: (): FileSourceState => ({ path, line, byte }),
    async close() { stream.destroy(); },
  };
}

interface CsvRow { record: unknown; raw: string; info: { lines: number } }

/** csv: csv-parse as a stream; each poll drains whatever rows the parser has ready. */
function csvReader<T>(path: string, options: FileSourceOptions<T>, ctx: SourceContext, skipThroughLine: number): SourceReader<T> {
  const origin = `${ctx.operatorName} (file ${path})`;
  const decode = valueDecoder(options.codec, origin, ctx.deadLetters);
  // Restored at a line: a checkpoint taken before a row past it is read must keep that line, not 0 (the
  // next restore would read the whole file again into output already committed).
  let line = skipThroughLine;
  let failure: unknown;
  let ended = false;
  const parser: Parser = parse({
    // A header naming a column twice would keep the last value only: refused (the parser's error fails the reader, naming the file).
    columns: (options.header ?? true) ? (names: string[]) => {
      const twice = names.find((n, i) => names.indexOf(n) !== i);
      if (twice !== undefined) throw new Error(`the header names column "${twice}" twice (a row would keep only its last value)`);
      return names;
    } : false,
    ...(options.delimiter !== undefined ? { delimiter: options.delimiter } : {}),
    bom: true,
    skip_empty_lines: true,
    info: true,
    raw: true,
    skip_records_with_error: true,
    // A quote inside a field (`1,"a"x`) is read as text: strict, the parser took the rest of the file as
    // one open quoted field and every later row was lost in one dead letter. RFC 4180 fields read the same.
    relax_quotes: true,
    on_skip: (err, raw) => {
      const lines: unknown = err?.lines;
      const at = typeof lines === "number" ? lines : line + 1;
      if (at <= skipThroughLine) return undefined;
      ctx.deadLetters.publish({ reason: `line ${at}: ${err?.message ?? "malformed CSV row"}`, origin, data: raw ?? "", line: at });
      return undefined;
    },
  });
  const stream = createReadStream(path, { highWaterMark: CHUNK_BYTES });
  stream.on("error", (e) => { failure = e; parser.destroy(); });
  parser.on("error", (e) => { failure = e; });
  parser.on("end", () => { ended = true; });
  stream.pipe(parser);

  const waitForRows = () => new Promise<void>((resolve) => {
    const done = () => {
      parser.off("readable", done); parser.off("end", done); parser.off("error", done); parser.off("close", done);
      resolve();
    };
    parser.once("readable", done); parser.once("end", done); parser.once("error", done); parser.once("close", done);
  });

  return {
    async pollNext() {
      for (;;) {
        if (failure !== undefined) throw readError(path, failure);
        const values: T[] = [];
        let read = 0;
        for (let row = parser.read() as CsvRow | null; row !== null; row = parser.read() as CsvRow | null) {
          read++;
          const at = row.info.lines;
          if (at <= skipThroughLine) continue;
          line = at;
          const raw = row.raw.endsWith("\n") ? row.raw.slice(0, -1) : row.raw;
          const v = decode(row.record, raw, at);
          if (v !== REJECTED) values.push(v);
          if (read >= 4096) break;
        }
        if (read > 0) return { values };
        if (ended || parser.readableEnded) return null;
        await waitForRows();
      }
    },
    snapshotState: (): FileSourceState => ({ path, line, byte: 0 }),
    async close() { stream.destroy(); parser.destroy(); },
  };
}
