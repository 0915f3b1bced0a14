// One SIGINT/SIGTERM listener for a command's whole run, whose handler changes as the run goes on (the
// job file loading, the job starting, the job running). Node restores a signal's default action, which
// ends the process at once, whenever its last listener is removed: swapping handlers by removing one
// listener and adding the next left such a moment, and a SIGTERM landing in it (a worker told to leave
// just as its job started, seen under load) killed the process with no graceful stop and no word.

export type SignalHandler = (signal: NodeJS.Signals) => void;

const SIGNALS = ["SIGINT", "SIGTERM"] as const;

export class SignalRoute {
  private handler: SignalHandler;
  private readonly listener = (signal: NodeJS.Signals): void => this.handler(signal);
  private closed = false;

  constructor(initial: SignalHandler, private readonly target: Pick<NodeJS.Process, "on" | "off"> = process) {
    this.handler = initial;
    for (const s of SIGNALS) target.on(s, this.listener);
  }

  /** From now on signals go to `handler`; the listener stays in place. */
  route(handler: SignalHandler): void {
    this.handler = handler;
  }

  /** Takes the listener off: signals have their default action again. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const s of SIGNALS) this.target.off(s, this.listener);
  }
}
