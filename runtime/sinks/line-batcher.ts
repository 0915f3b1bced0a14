// The file sinks' write path: records become lines, gathered and written in chunks of about CHUNK_CHARS
// (or `lingerMs` after a chunk's first line), one write after another. A full chunk's write promise is
// returned to the caller (backpressure); a failed write is kept and thrown at the next record.

import type { WeirError } from "../core/errors.ts";
import { unencodable } from "./payload.ts";

const CHUNK_CHARS = 64 * 1024;
/** A bytes record in format "lines" must be UTF-8 text: `fatal` throws on anything else instead of writing U+FFFD. */
const utf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * A bytes record's line: in "jsonl" its base64 as a JSON string (JSON of a Uint8Array would be an object
 * of numbered bytes), in "lines" its text; undefined when it is not UTF-8 text.
 */
function bytesLine(value: Uint8Array, json: boolean): string | undefined {
  if (json) return JSON.stringify(Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString("base64"));
  try {
    return utf8.decode(value);
  } catch {
    return undefined;
  }
}

export class LineBatcher {
  private lines: string[] = [];
  private chars = 0;
  private timer: NodeJS.Timeout | undefined;
  /** The chain of writes queued so far (a caller may append its own steps, e.g. closing a file). */
  writing: Promise<void> = Promise.resolve();
  failure: WeirError | undefined;

  constructor(
    private readonly json: boolean,
    private readonly lingerMs: number,
    /** Writes one chunk; its error becomes `failure` through `onError`. */
    private readonly write: (chunk: string) => Promise<void>,
    private readonly onError: (e: unknown) => WeirError,
    /** A record JSON cannot encode (cyclic, nested too deep): to the dead letters, not a failure of the sink. */
    private readonly reject: (value: unknown, reason: string) => void,
  ) {}

  add(value: unknown): Promise<void> | undefined {
    if (this.failure) throw this.failure;
    let line: string;
    if (value instanceof Uint8Array) {
      const text = bytesLine(value, this.json);
      if (text === undefined) {
        this.reject(value, 'a bytes record that is not UTF-8 text: format "lines" writes text (format "jsonl" writes bytes as base64)');
        return undefined;
      }
      line = text;
    } else {
      try {
        line = !this.json && typeof value === "string" ? value : JSON.stringify(value) ?? "null";
      } catch (e) {
        this.reject(value, unencodable(e));
        return undefined;
      }
    }
    this.lines.push(line);
    this.chars += line.length + 1;
    if (this.chars >= CHUNK_CHARS) return this.writeOut();
    this.timer ??= setTimeout(() => { void this.writeOut(); }, this.lingerMs);
    return undefined;
  }

  /** Queues the gathered lines; resolves when everything queued so far is written. */
  writeOut(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.lines.length > 0) {
      const chunk = this.lines.join("\n") + "\n";
      this.lines = [];
      this.chars = 0;
      this.writing = this.writing.then(async () => {
        try { await this.write(chunk); } catch (e) { this.failure ??= this.onError(e); }
      });
    }
    return this.writing;
  }

  /** Drops what was gathered and not yet queued (a failed or cancelled writer). */
  discard(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.lines = [];
    this.chars = 0;
  }

  stopTimer(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}
