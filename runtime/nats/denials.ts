// Publishes the server denied on a connection (the user's permissions). A denied publish is not an error
// of the call that made it: the server answers "-ERR Permissions Violation for Publish to ..." on the
// side and drops the message, so a JetStream publish waiting for its ack would only time out, and weir's
// retries through leader elections (jetstream-retry.ts) would wait out their whole budget (~35 s of
// "failing" before a job that a sink subject's permission stopped could end). One status watcher per
// connection tells each publisher (publish-pipe.ts) at once, and names the permission. It also keeps the
// last refusal of the connection's credentials, which the client's own reason for closing may hide.

import { AuthorizationError, PermissionViolationError, UserAuthenticationExpiredError, type NatsConnection } from "@nats-io/transport-node";
import { ErrorCode, WeirError } from "../core/errors.ts";

/** The one line weir prints for a permission the server denied. */
export function permissionError(e: PermissionViolationError): WeirError {
  return new WeirError(ErrorCode.NatsPermission, `the NATS user lacks a permission weir needs: ${e.message.split("\n")[0]}`, { cause: e });
}

type Listener = (subject: string, e: WeirError) => void;

interface Registry {
  /** Denied publish subjects, each with its error (the first one). */
  readonly denied: Map<string, WeirError>;
  readonly listeners: Set<Listener>;
  /** The last refusal of the credentials (a reconnect refused; the client then gives up). */
  authError?: Error;
}

const registries = new WeakMap<NatsConnection, Registry>();

function registryOf(nc: NatsConnection): Registry {
  const known = registries.get(nc);
  if (known) return known;
  const registry: Registry = { denied: new Map(), listeners: new Set() };
  registries.set(nc, registry);
  void (async () => {
    for await (const s of nc.status()) {
      // An expiry says more than the "Authorization Violation" of the reconnects it then causes.
      if (s.type === "error" && (s.error instanceof AuthorizationError || s.error instanceof UserAuthenticationExpiredError) && !(registry.authError instanceof UserAuthenticationExpiredError)) registry.authError = s.error;
      if (s.type !== "error" || !(s.error instanceof PermissionViolationError) || s.error.operation !== "publish") continue;
      const subject = s.error.subject;
      const e = registry.denied.get(subject) ?? permissionError(s.error);
      // Bounded: a user denied many subjects keeps the first few hundred (only a timed-out publish looks here).
      if (!registry.denied.has(subject) && registry.denied.size < 1000) registry.denied.set(subject, e);
      for (const l of registry.listeners) l(subject, e);
    }
  })().catch(() => {});
  return registry;
}

/** Calls `listener` with each publish subject the server denies on `nc`; returns the way to stop. */
export function onPublishDenied(nc: NatsConnection, listener: Listener): () => void {
  const r = registryOf(nc);
  r.listeners.add(listener);
  return () => { r.listeners.delete(listener); };
}

/** The permission error when the server denied a publish to `subject` on `nc` (watched since `onPublishDenied`). */
export function publishDenied(nc: NatsConnection, subject: string): WeirError | undefined {
  return registries.get(nc)?.denied.get(subject);
}

/** Starts watching `nc` (weir's connections, as soon as they are made, so that no refusal goes unseen). */
export function watchConnection(nc: NatsConnection): void { registryOf(nc); }

/**
 * The last time the server refused `nc`'s credentials. The client gives up reconnecting after that, but
 * may close with a later error of its own ("connection refused") rather than the refusal.
 */
export function lastAuthRefusal(nc: NatsConnection): Error | undefined {
  return registries.get(nc)?.authError;
}
