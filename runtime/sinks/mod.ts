// Public entry of the sinks: the `Sinks` factories and their option types.
export * from "./sinks.ts";
