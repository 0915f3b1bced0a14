// The changelog's message format. A checkpoint's delta for one key group is one text blob, a line per
// entry: `<kvKey>\t<json>\n`, with nothing after the tab for a deletion (KV keys contain no tab or newline,
// JSON.stringify output contains no raw newline). The blob is cut into messages of at most `partBytes`
// (a long value may span messages); a reader concatenates the parts of a (checkpoint, key group) in order.

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** One captured entry: its KV key and serialized value (undefined = deleted). */
export interface DeltaEntry {
  readonly key: string;
  readonly json: string | undefined;
}

/** Encodes entries into parts of at most `partBytes` bytes each. */
export function encodeDelta(entries: readonly DeltaEntry[], partBytes: number): Uint8Array[] {
  const parts: Uint8Array[] = [];
  let lines: string[] = [];
  let size = 0;
  const cut = (): void => {
    if (lines.length === 0) return;
    const blob = encoder.encode(lines.join(""));
    for (let offset = 0; offset < blob.length; offset += partBytes) parts.push(blob.subarray(offset, offset + partBytes));
    lines = [];
    size = 0;
  };
  for (const e of entries) {
    const line = `${e.key}\t${e.json ?? ""}\n`;
    lines.push(line);
    size += line.length;
    // Cut at line boundaries when possible (a part then holds whole lines), at bytes otherwise.
    if (size >= partBytes) cut();
  }
  cut();
  return parts;
}

/** Decodes the concatenated parts of one (checkpoint, key group) delta, applying entries in order. */
export function decodeDelta(parts: readonly Uint8Array[], into: Map<string, string | undefined>): number {
  let total = 0;
  for (const p of parts) total += p.length;
  const blob = new Uint8Array(total);
  let offset = 0;
  for (const p of parts) { blob.set(p, offset); offset += p.length; }
  const text = decoder.decode(blob);
  let n = 0;
  let start = 0;
  while (start < text.length) {
    let end = text.indexOf("\n", start);
    if (end < 0) end = text.length;
    const tab = text.indexOf("\t", start);
    if (tab < 0 || tab > end) throw new Error(`malformed changelog line at byte ${start}`);
    const json = text.slice(tab + 1, end);
    into.set(text.slice(start, tab), json.length === 0 ? undefined : json);
    n++;
    start = end + 1;
  }
  return n;
}
