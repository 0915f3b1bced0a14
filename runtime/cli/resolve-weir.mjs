// A loader hook of the `weir` command (bin/weir.mjs registers it): a job file in a folder where Node finds
// no `weir` package, say one written to a temporary folder, imports "weir" (and "weir/state", and the
// packages weir itself depends on, such as "io-ts" for state codecs) as weir's own files would: from the
// weir that runs it. A package the job's folder has is always its own; one neither has is still an error.

/** A file inside this package: from it Node resolves the package's own name (package.json "exports") and its dependencies. */
const INSIDE = import.meta.url;

/** A package name, not a path, a URL or a Node built-in. */
const isBare = (specifier) => !/^(\.{0,2}\/|[a-z][a-z0-9+.-]*:)/i.test(specifier);

export async function resolve(specifier, context, nextResolve) {
  try {
    return await nextResolve(specifier, context);
  } catch (e) {
    if (e?.code !== "ERR_MODULE_NOT_FOUND" || !isBare(specifier) || context.parentURL === INSIDE) throw e;
    try {
      return await nextResolve(specifier, { ...context, parentURL: INSIDE });
    } catch {
      throw e; // named as the job's folder saw it
    }
  }
}
