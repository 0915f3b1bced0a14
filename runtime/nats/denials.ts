// Publishes the server denied on a connection (the user's permissions). A denied publish is not an error
// of the call that made it: the server answers "-ERR Permissions Violation for Publish to ..." on the
// side and drops the message, so a JetStream publish waiting for its ack would only time out, and weir's
// retries through leader elections (jetstream-retry.ts) would wait out their whole budget (~35 s of
// "failing" before a job that a sink subject's permission stopped could end). Each publisher
// (publish-pipe.ts) watches its connection's status for them, and fails what waits on such a subject at
// once, naming the permission.

import { AuthorizationError, PermissionViolationError, UserAuthenticationExpiredError, type NatsConnection, type Status } from "@nats-io/transport-node";
import { ErrorCode, WeirError } from "../core/errors.ts";

/** The one line weir prints for a permission the server denied. */
export function permissionError(e: PermissionViolationError): WeirError {
  return new WeirError(ErrorCode.NatsPermission, `the NATS user lacks a permission weir needs: ${e.message.split("\n")[0]}`, { cause: e });
}

/**
 * Calls `onDenied` with each permission the server denies `nc`, as one-line WeirErrors (and the client's
 * error, which names the operation and subject); returns the way to stop.
 */
export function watchPermissionDenials(nc: NatsConnection, onDenied: (e: WeirError, violation: PermissionViolationError) => void): () => void {
  const status = nc.status() as AsyncIterable<Status> & { stop?: () => void };
  void (async () => {
    for await (const s of status) {
      if (s.type === "error" && s.error instanceof PermissionViolationError) onDenied(permissionError(s.error), s.error);
    }
  })().catch(() => {});
  return () => status.stop?.();
}

/** Denied publish subjects seen kept, at most: a user denied many subjects keeps the first ones (only a timed-out publish looks here). */
const MAX_DENIED_SUBJECTS = 1000;

/** The publish subjects the server denied on a connection since `watch`, each with its error (the first one). */
export class PublishDenials {
  private readonly denied = new Map<string, WeirError>();
  readonly stop: () => void;

  /** `onDenied` is called with each denial as it comes. */
  constructor(nc: NatsConnection, onDenied: (subject: string, e: WeirError) => void) {
    this.stop = watchPermissionDenials(nc, (denial, violation) => {
      if (violation.operation !== "publish") return;
      const subject = violation.subject;
      const e = this.denied.get(subject) ?? denial;
      if (!this.denied.has(subject) && this.denied.size < MAX_DENIED_SUBJECTS) this.denied.set(subject, e);
      onDenied(subject, e);
    });
  }

  /** The permission error when the server denied a publish to `subject`. */
  of(subject: string): WeirError | undefined { return this.denied.get(subject); }
}

/** Whether a status error is the server refusing the connection's credentials (on a reconnect: the client then gives up). */
export function isCredentialsRefusal(e: unknown): boolean {
  return e instanceof AuthorizationError || e instanceof UserAuthenticationExpiredError;
}

/**
 * The refusal worth reporting of a connection's credentials, from its status errors: an expiry says
 * more than the "Authorization Violation" of the reconnects it then causes.
 */
export function moreTelling(known: Error | undefined, seen: unknown): Error | undefined {
  if (!isCredentialsRefusal(seen) || known instanceof UserAuthenticationExpiredError) return known;
  return seen as Error;
}
