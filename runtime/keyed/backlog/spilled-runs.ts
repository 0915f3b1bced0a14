// The runs a backlog sort buffer spilled to local disk, partitioned by key group instead of sorted: the
// drain needs each key's records together and in arrival order, not keys in order. A run is one file of
// sections, one per key group; a section is one line, the JSON array of its keys' entries (sorted-key.ts):
// one stringify and one parse per group instead of a text, a concatenation and a parse per key, and a key
// read back keeps its parsed values array. The run's index (where each group's section is) stays in
// memory. The drain reads a key group's sections from every run in spill order and groups their entries by
// key, so a key's records come back in arrival order with no sort, merge heap or sequence numbers. A key
// group too large for the memory budget is first split on disk by a hash of the key (a key's records all
// land in one part).

import { mkdtempSync, rmSync } from "node:fs";
import { open, type FileHandle } from "node:fs/promises";
import { join } from "node:path";
import { SortedKey, type SpilledEntry } from "./sorted-key.ts";

// JSON.stringify escapes line ends inside strings: a line is one whole JSON text.
const LINE_END = "\n";

interface Section { offset: number; bytes: number }
interface Run { path: string; sections: Map<number, Section> }
/** Where to read a section. */
interface Located { path: string; section: Section }

export class SpilledRuns {
  private readonly runs: Run[] = [];
  private dir: string | undefined;
  private splits = 0;
  /** The run being written, if any (cleanup waits for it). */
  private writing: Promise<void> | undefined;

  /** `maxGroupBytes`: a key group with more spilled bytes than this is split before it is read. */
  constructor(private readonly directory: string, private readonly defaultWatermark: number, private readonly maxGroupBytes: number) {}

  get count(): number { return this.runs.length; }

  /** Writes `keys` (grouped by key group, as SortBuffer.takeGrouped gives them) as a new run. */
  write(keys: readonly SortedKey[]): Promise<void> {
    const writing = this.writeRun(keys);
    this.writing = writing;
    return writing.finally(() => { if (this.writing === writing) this.writing = undefined; });
  }

  private async writeRun(keys: readonly SortedKey[]): Promise<void> {
    const dir = this.runDirectory();
    const path = join(dir, `run-${this.runs.length}.txt`);
    const sections = new Map<number, Section>();
    // A file handle, not a stream: a failure (the directory removed by a close meanwhile, a full disk) is
    // this call's rejection, never an 'error' event nobody listens to.
    const file = await open(path, "a");
    try {
      let offset = 0;
      for (let i = 0; i < keys.length;) {
        // Cleaned up meanwhile (the subtask closed): nothing more goes to disk.
        if (this.dir !== dir) return;
        const group = keys[i]!.keyGroup;
        const entries: SpilledEntry[] = [];
        for (; i < keys.length && keys[i]!.keyGroup === group; i++) entries.push(keys[i]!.spilled());
        const text = JSON.stringify(entries) + LINE_END;
        const bytes = Buffer.byteLength(text);
        sections.set(group, { offset, bytes });
        offset += bytes;
        await file.appendFile(text);
      }
    } finally {
      await file.close();
    }
    if (this.dir === dir) this.runs.push({ path, sections });
  }

  /** The key groups any run holds, ascending. */
  groups(): number[] {
    const groups = new Set<number>();
    for (const run of this.runs) for (const g of run.sections.keys()) groups.add(g);
    return [...groups].sort((a, b) => a - b);
  }

  /**
   * Key group `group`'s spilled keys with their records in arrival order, then `later`'s records of the
   * same group (what is still in memory, which arrived after every run) appended: in parts, each holding
   * whole keys, each part's keys held in memory only while it is consumed.
   */
  async *readGroup(group: number, later: readonly SortedKey[]): AsyncGenerator<SortedKey[]> {
    let bytes = 0;
    const files: Located[] = [];
    for (const run of this.runs) {
      const s = run.sections.get(group);
      if (s !== undefined) { files.push({ path: run.path, section: s }); bytes += s.bytes; }
    }
    if (bytes <= this.maxGroupBytes) {
      yield await this.readParts(files, group, later);
      return;
    }
    // Split into parts of about half the limit each by the key's hash: a key's lines all go to one part.
    const n = Math.ceil((2 * bytes) / this.maxGroupBytes);
    const parts = await this.split(files, n);
    for (let j = 0; j < n; j++) {
      const p = parts[j]!;
      yield await this.readParts(p.bytes > 0 ? [{ path: p.path, section: { offset: 0, bytes: p.bytes } }] : [], group, later.filter((k) => hashOf(k.keyId) % n === j));
    }
  }

  /**
   * Removes every run. A run being written may have created its file while the directory was being
   * removed (a cancel in the middle of a spill): the directory is removed again once that write settled,
   * which the returned promise waits for.
   */
  cleanup(): Promise<void> | undefined {
    const dir = this.dir;
    this.dir = undefined;
    this.runs.length = 0;
    if (dir === undefined) return undefined;
    const remove = (): void => {
      try {
        rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
      } catch {
        // not empty: a write in flight created its file meanwhile (removed below, after it settled)
      }
    };
    remove();
    const writing = this.writing;
    return writing === undefined ? undefined : writing.then(remove, remove);
  }

  private runDirectory(): string {
    this.dir ??= mkdtempSync(join(this.directory, "weir-sort-"));
    return this.dir;
  }

  private async readParts(files: readonly Located[], group: number, later: readonly SortedKey[]): Promise<SortedKey[]> {
    const keys = new Map<string, SortedKey>();
    for (const { path, section } of files) {
      for await (const lines of readLines(path, section, this.maxGroupBytes)) {
        for (const line of lines) {
          if (line.length === 0) continue;
          for (const entry of JSON.parse(line) as SpilledEntry[]) {
            const key = keys.get(entry[0]);
            if (key === undefined) keys.set(entry[0], SortedKey.fromSpilled(group, entry, this.defaultWatermark));
            else key.appendSpilled(entry);
          }
        }
      }
    }
    for (const k of later) {
      const earlier = keys.get(k.keyId);
      if (earlier === undefined) keys.set(k.keyId, k);
      else earlier.append(k);
    }
    return [...keys.values()];
  }

  /** Copies the lines of `files` into `n` part files by the hash of their key, in order. */
  private async split(files: readonly Located[], n: number): Promise<Array<{ path: string; bytes: number }>> {
    const split = this.splits++;
    const parts = Array.from({ length: n }, (_, j) => ({ path: join(this.runDirectory(), `split-${split}-${j}.txt`), bytes: 0, file: undefined as FileHandle | undefined }));
    try {
      for (const { path, section } of files) {
        // A section is read in slices of at most the limit, cut at line ends; each line's entries are
        // appended to their parts as one line per part.
        for await (const lines of readLines(path, section, this.maxGroupBytes)) {
          const byPart = new Map<number, SpilledEntry[]>();
          for (const line of lines) {
            if (line.length === 0) continue;
            for (const entry of JSON.parse(line) as SpilledEntry[]) {
              const j = hashOf(entry[0]) % n;
              let e = byPart.get(j);
              if (e === undefined) byPart.set(j, (e = []));
              e.push(entry);
            }
          }
          for (const [j, entries] of byPart) {
            const p = parts[j]!;
            const text = JSON.stringify(entries) + LINE_END;
            p.file ??= await open(p.path, "a");
            p.bytes += Buffer.byteLength(text);
            await p.file.appendFile(text);
          }
        }
      }
    } finally {
      for (const p of parts) await p.file?.close();
    }
    return parts;
  }
}

/** A section's lines, in slices of about `sliceBytes`. */
async function* readLines(path: string, section: Section, sliceBytes: number): AsyncGenerator<string[]> {
  const file = await open(path, "r");
  try {
    let at = section.offset;
    const end = section.offset + section.bytes;
    // Bytes after the last line end read so far (a line's start, possibly cut inside a character).
    let rest = Buffer.alloc(0);
    while (at < end) {
      const buffer = Buffer.allocUnsafe(Math.min(sliceBytes, end - at));
      const r = await file.read(buffer, 0, buffer.length, at);
      if (r.bytesRead === 0) throw new Error(`spilled run ${path}: ends early`);
      at += r.bytesRead;
      const bytes = Buffer.concat([rest, buffer.subarray(0, r.bytesRead)]);
      const lastEnd = bytes.lastIndexOf(10);
      rest = lastEnd < 0 ? bytes : bytes.subarray(lastEnd + 1);
      if (lastEnd > 0) yield bytes.toString("utf8", 0, lastEnd).split(LINE_END);
    }
    if (rest.length > 0) yield [rest.toString("utf8")];
  } finally {
    await file.close();
  }
}

/** FNV-1a of a key id: which part of a split key group the key goes to. */
function hashOf(keyId: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < keyId.length; i++) h = Math.imul(h ^ keyId.charCodeAt(i), 0x01000193);
  return h >>> 0;
}
