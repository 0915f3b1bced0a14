// A step failed: its message becomes the scenario's reason (run-state.ts's stepFailure prints it as is).

export class StepFailure extends Error {}
