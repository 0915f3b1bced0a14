// `weir run` swaps its SIGINT/SIGTERM handler as the run goes on (loading, starting, running). Node gives a
// signal its default action (the process ends at once) whenever its last listener goes: a SIGTERM sent to
// a worker just as its job started killed it with no graceful stop (exit by signal, seen under load).
import { test } from "uvu";
import * as assert from "uvu/assert";
import { readFileSync } from "node:fs";
import { SignalRoute } from "../runtime/cli/signal-route.ts";

test("one listener from construction to close; a signal goes to the handler routed last", () => {
  const before = process.listenerCount("SIGTERM");
  const beforeInt = process.listenerCount("SIGINT");
  const seen: string[] = [];
  const route = new SignalRoute((s) => seen.push(`loading ${s}`));
  try {
    const counts = [process.listenerCount("SIGTERM")];
    process.emit("SIGTERM", "SIGTERM");
    route.route((s) => seen.push(`starting ${s}`));
    counts.push(process.listenerCount("SIGTERM"));
    process.emit("SIGINT", "SIGINT");
    route.route((s) => seen.push(`running ${s}`));
    counts.push(process.listenerCount("SIGTERM"));
    process.emit("SIGTERM", "SIGTERM");
    assert.equal(counts, [before + 1, before + 1, before + 1], "never without a listener while routed");
    assert.equal(seen, ["loading SIGTERM", "starting SIGINT", "running SIGTERM"]);
  } finally {
    route.close();
    route.close();
  }
  assert.is(process.listenerCount("SIGTERM"), before, "closed: the default action again");
  assert.is(process.listenerCount("SIGINT"), beforeInt);
});

test("a new handler never leaves a moment without a listener (counted at every change)", () => {
  const listeners = new Map<string, number>();
  let lowest = Number.POSITIVE_INFINITY;
  const target = {
    on(s: string) { listeners.set(s, (listeners.get(s) ?? 0) + 1); return target; },
    off(s: string) { listeners.set(s, (listeners.get(s) ?? 0) - 1); lowest = Math.min(lowest, listeners.get(s)!); return target; },
  } as unknown as Pick<NodeJS.Process, "on" | "off">;
  const route = new SignalRoute(() => {}, target);
  route.route(() => {});
  route.route(() => {});
  assert.is(lowest, Number.POSITIVE_INFINITY, "no listener was taken off while routing");
  route.close();
  assert.equal(Object.fromEntries(listeners), { SIGINT: 0, SIGTERM: 0 });
});

test("weir run swaps handlers through its route, never by taking a signal listener off", () => {
  const source = readFileSync(new URL("../runtime/cli/commands/run.ts", import.meta.url), "utf8");
  assert.not.match(source, /process\.(off|removeListener|on|once)\("SIG(INT|TERM)"/);
  assert.match(source, /signals\.route\(onSignal\)/);
});

test.run();
