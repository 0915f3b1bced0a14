// A subtask's lifecycle actor and the questions the runtime asks of it. Every answer is read from the
// actor's current snapshot (a field read, cheap enough once per frame or batch, never per record): the
// machine in actors/subtask/machine.ts is the only record of where the subtask is.

import { createActor, type Actor, type InspectionEvent } from "xstate";
import { SubtaskTag, describeSubtaskState, subtaskMachine, type SubtaskEvent, type SubtaskMachineInput } from "./machine.ts";
import type { Clock } from "../../runtime/core/clock.ts";

/** The effects the machine asks for (its provided actions). */
export interface SubtaskEffects {
  startSnapshot(checkpointId: number): void;
  wakeForStop(): void;
  discardOperators(): void;
  releaseResources(): void;
}

export type SubtaskActor = Actor<typeof subtaskMachine>;

export class SubtaskLifecycle {
  readonly actor: SubtaskActor;

  constructor(id: string, input: SubtaskMachineInput, effects: SubtaskEffects, clock: Clock, inspect?: (event: InspectionEvent) => void) {
    this.actor = createActor(
      subtaskMachine.provide({
        actions: {
          startSnapshot: (_, params) => effects.startSnapshot(params.checkpointId),
          wakeForStop: () => effects.wakeForStop(),
          discardOperators: () => effects.discardOperators(),
          releaseResources: () => effects.releaseResources(),
        },
      }),
      // The subtask's id (`<uid>#<index>`) names it in inspection events and in the actor system.
      { id, systemId: id, input, clock, ...(inspect ? { inspect } : {}) },
    );
  }

  start(): void { this.actor.start(); }
  /** Events after a final state change nothing: they are dropped here rather than sent to a stopped actor. */
  send(event: SubtaskEvent): void {
    if (this.actor.getSnapshot().status === "active") this.actor.send(event);
  }

  /** Finished, failed or cancelled: the machine reached a final state. */
  get isTerminal(): boolean { return this.actor.getSnapshot().status !== "active"; }
  /** Terminal, or a source asked to end its input gracefully. */
  get sourceShouldEnd(): boolean {
    const s = this.actor.getSnapshot();
    return s.status !== "active" || s.context.stopRequested;
  }
  get wentLive(): boolean { return this.actor.getSnapshot().context.wentLive; }
  get isBacklog(): boolean { return this.actor.getSnapshot().matches({ running: { mode: "backlog" } }); }
  get isSorting(): boolean { return this.actor.getSnapshot().matches({ running: { mode: "sorting" } }); }
  get outputsEnded(): boolean { return this.actor.getSnapshot().hasTag(SubtaskTag.outputsEnded); }
  get inputFinished(): boolean { return this.actor.getSnapshot().hasTag(SubtaskTag.inputFinished); }
  get awaitingFinalCheckpoint(): boolean { return this.actor.getSnapshot().matches({ finishing: { phase: "awaitingFinalCheckpoint" } }); }
  get isClosing(): boolean { return this.actor.getSnapshot().matches({ finishing: { phase: "closing" } }); }
  get isFinished(): boolean { return this.actor.getSnapshot().matches("finished"); }
  get error(): string | undefined { return this.actor.getSnapshot().context.error; }
  get description(): string { return describeSubtaskState(this.actor.getSnapshot().value); }
}
