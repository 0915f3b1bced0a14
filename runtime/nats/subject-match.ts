// NATS subject matching: which subjects a filter (a stream's, a consumer's) takes.

/**
 * NATS subject matching for one filter (`*` one token, `>` one or more trailing tokens), its tokens split
 * once: the catch-up tests every message it reads. A filter without wildcards is a string comparison.
 */
export function subjectMatcher(filter: string): (subject: string) => boolean {
  const f = filter.split(".");
  if (!f.includes("*") && !f.includes(">")) return (subject) => subject === filter;
  return (subject) => {
    const s = subject.split(".");
    for (let i = 0; i < f.length; i++) {
      const token = f[i]!;
      if (token === ">") return s.length > i;
      if (i >= s.length || (token !== "*" && token !== s[i])) return false;
    }
    return f.length === s.length;
  };
}

export function subjectMatches(filter: string, subject: string): boolean {
  return subjectMatcher(filter)(subject);
}
