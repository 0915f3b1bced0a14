// `weir/scenarios`: scenario-driven simulation tests, programmatically (re-exports only).
export { runScenario, findScenarioFiles, describeStep, dlqStream } from "./runner.ts";
export type { ScenarioResult, ScenarioOutcome, RunScenarioOptions } from "./runner.ts";
export { loadScenario, parseScenario, DEFAULT_STEP_TIMEOUT_MS } from "./format.ts";
export type { Scenario, ScenarioFile, Step, Expectation, JobOverrides } from "./format.ts";
export { scenarioCommand, formatTable } from "./cli.ts";
