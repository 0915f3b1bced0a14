// The end of a soak: the outputs of bench/jobs/soak.ts against the reference (bench/soak-model.ts),
// read message by message (millions of them: nothing is kept but a counter per key and count).
import type { NatsConnection } from "@nats-io/transport-node";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { countsPerKey, windowCounts, windowOf, type SoakModel } from "./soak-model.ts";

export interface CountsCheck { readonly outputs: number; readonly lost: number; readonly duplicated: number; readonly wrongFinal: number }
export interface WindowsCheck {
  readonly outputs: number;
  readonly windows: number;
  /** Window outputs whose count differs from the reference. */
  readonly wrong: number;
  readonly duplicated: number;
  /** (key, window) pairs with inputs and no output, in windows before the last one that fired. */
  readonly missing: number;
  /** Window → its missing pairs, for the windows that miss any. */
  readonly missingByWindow: Readonly<Record<number, number>>;
}

/** Every key's counts must be exactly 1..n (n its inputs), each once. */
export async function checkCounts(nc: NatsConnection, m: SoakModel, published: number): Promise<CountsCheck> {
  const expected = countsPerKey(m, published);
  const seen = Array.from(expected, (n) => new Uint8Array(n + 1));
  let outputs = 0;
  let duplicated = 0;
  await readEach(nc, "SOAK_COUNTS", (x: { key: string; n: number }) => {
    outputs++;
    const k = Number(x.key.slice(1));
    const marks = seen[k];
    if (!marks || x.n < 1 || x.n >= marks.length) { duplicated++; return; }
    if (marks[x.n]! > 0) duplicated++;
    marks[x.n] = 1;
  });
  let lost = 0;
  let wrongFinal = 0;
  seen.forEach((marks, k) => {
    for (let c = 1; c < marks.length; c++) if (!marks[c]) lost++;
    if (expected[k]! > 0 && !marks[expected[k]!]) wrongFinal++;
  });
  return { outputs, lost, duplicated, wrongFinal };
}

/** Every window output's count must match the reference, once per (key, window). */
export async function checkWindows(nc: NatsConnection, m: SoakModel, published: number): Promise<WindowsCheck> {
  const fired = new Map<number, Uint8Array>();
  const reference = new Map<number, Uint32Array>();
  let outputs = 0;
  let wrong = 0;
  let duplicated = 0;
  await readEach(nc, "SOAK_WINDOWS", (x: { key: string; ts: number; c: number }) => {
    outputs++;
    const w = windowOf(m, x.ts);
    const k = Number(x.key.slice(1));
    let ref = reference.get(w);
    if (!ref) reference.set(w, (ref = windowCounts(m, w, published)));
    let marks = fired.get(w);
    if (!marks) fired.set(w, (marks = new Uint8Array(m.keys)));
    if (marks[k]) duplicated++;
    marks[k] = 1;
    if (ref[k] !== x.c) wrong++;
  });
  const last = Math.max(-1, ...fired.keys());
  let missing = 0;
  const missingByWindow: Record<number, number> = {};
  for (let w = 0; w < last; w++) {
    const ref = reference.get(w) ?? windowCounts(m, w, published);
    const marks = fired.get(w);
    for (let k = 0; k < m.keys; k++) if (ref[k]! > 0 && !marks?.[k]) { missing++; missingByWindow[w] = (missingByWindow[w] ?? 0) + 1; }
  }
  return { outputs, windows: fired.size, wrong, duplicated, missing, missingByWindow };
}

/** Calls `each` with every message of `stream` (parsed JSON), in order, up to what it holds now. */
async function readEach<T>(nc: NatsConnection, stream: string, each: (x: T) => void): Promise<void> {
  const info = await (await jetstreamManager(nc)).streams.info(stream).catch(() => undefined);
  if (!info || info.state.messages === 0) return;
  const consumer = await jetstream(nc).consumers.get(stream);
  const messages = await consumer.consume({ max_messages: 5000 });
  try {
    for await (const msg of messages) {
      each(msg.json<T>());
      if (msg.info.pending === 0) break;
    }
  } finally {
    await messages.close();
  }
}
