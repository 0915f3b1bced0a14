// A loader hook of the `weir` command (bin/weir.mjs registers it after tsx's): TypeScript files outside
// node_modules load as ES modules whatever their package.json says. weir is an ES module package, and a
// job that imports it from a .ts file in a CommonJS (or package.json-less) folder was compiled to
// CommonJS by tsx and failed with "Cannot require() ES Module ... in a cycle".

const TYPESCRIPT = /\.(ts|tsx)$/;

export async function load(url, context, nextLoad) {
  const path = url.split("?")[0];
  if (url.startsWith("file:") && TYPESCRIPT.test(path) && !path.includes("/node_modules/")) {
    return nextLoad(url, { ...context, format: "module" });
  }
  return nextLoad(url, context);
}
