// NATS subject matching (runtime/nats/subject-match.ts), which the JetStream source's catch-up and sink
// use per message: every filter against every subject over a small alphabet of tokens, empty ones
// included, must agree with matching on the split tokens (the NATS definition: `*` one token, `>` one or
// more trailing ones).
import { test } from "uvu";
import * as assert from "uvu/assert";
import { subjectMatcher, subjectMatches } from "../runtime/nats/subject-match.ts";

function byTokens(filter: string, subject: string): boolean {
  const f = filter.split(".");
  const s = subject.split(".");
  for (let i = 0; i < f.length; i++) {
    if (f[i] === ">") return s.length > i;
    if (i >= s.length || (f[i] !== "*" && f[i] !== s[i])) return false;
  }
  return f.length === s.length;
}

/** Every dot-joined sequence of 1..max tokens drawn from `tokens`. */
function joined(tokens: readonly string[], max: number): string[] {
  let level = tokens.map((t) => [t]);
  const all: string[] = [];
  for (let n = 1; n <= max; n++) {
    all.push(...level.map((ts) => ts.join(".")));
    level = level.flatMap((ts) => tokens.map((t) => [...ts, t]));
  }
  return all;
}

test("every filter agrees with token-by-token matching on every subject", () => {
  const subjects = joined(["a", "b", "ab", ""], 4);
  const filters = joined(["a", "ab", "*", ">"], 4);
  let compared = 0;
  for (const filter of filters) {
    const matches = subjectMatcher(filter);
    for (const subject of subjects) {
      assert.is(matches(subject), byTokens(filter, subject), `filter ${JSON.stringify(filter)}, subject ${JSON.stringify(subject)}`);
      compared++;
    }
  }
  assert.ok(compared > 50_000, `${compared} pairs`);
});

test("the cases a reader checks", () => {
  assert.ok(subjectMatches("stats.>", "stats.user.u1"));
  assert.not.ok(subjectMatches("stats.>", "stats"));
  assert.ok(subjectMatches("stats.*.u1", "stats.page.u1"));
  assert.not.ok(subjectMatches("stats.*", "stats.page.u1"));
  assert.not.ok(subjectMatches("a.b", "a.bc"));
  assert.not.ok(subjectMatches("a.*", "ab.c"));
});

test.run();
