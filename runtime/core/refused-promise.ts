// A user function returned a Promise where weir wants a value (map, filter, flatMap, a key selector, a
// timestamp assigner, a window's reduce or aggregate): weir refuses it, which fails the subtask naming the
// operator. Its rejection, if it has one, must not also end the process as an unhandled rejection (an
// `async` function that throws rejects): that crashed `weir run` instead of applying the restart strategy.

/** Marks `value`'s rejection, if it is a Promise that rejects, as handled; returns `value`. */
export function ignoreRejection<T>(value: T): T {
  const then = (value as { then?: unknown } | null | undefined)?.then;
  if (typeof then === "function") (then as (ok: undefined, ko: () => void) => unknown).call(value, undefined, noop);
  return value;
}

function noop(): void {}
