// Public entry of the sources: the `Sources` factories and their option types.
export * from "./sources.ts";
