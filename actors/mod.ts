export { subtaskMachine, describeSubtaskState } from "./subtask/machine.ts";
export type { SubtaskEvent, SubtaskMachineContext, SubtaskMachineInput } from "./subtask/machine.ts";
export { jobMachine } from "./job/machine.ts";
export type { JobEvent, JobMachineContext, JobMachineInput, JobState } from "./job/machine.ts";
export { checkpointMachine } from "./checkpoint/machine.ts";
export type { CheckpointEvent, CheckpointMachineContext, CheckpointMachineInput } from "./checkpoint/machine.ts";
