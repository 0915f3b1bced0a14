// TLS settings checked before connecting, and TLS failures told in terms of the settings: the client's
// own words ("PEM routines::no start line", "unable to verify the first certificate", a bare "timeout"
// when the server drops a handshake without a client certificate it trusts) name no file and no setting.

import { X509Certificate, createPrivateKey, type KeyObject } from "node:crypto";
import { ErrorCode, WeirError } from "../core/errors.ts";
import type { NatsSettings } from "./connection-settings.ts";

const CA_SOURCES = "WEIR_NATS_TLS_CA, the job option nats.tls.ca or a context's ca";
const CERT_SOURCES = "WEIR_NATS_TLS_CERT and WEIR_NATS_TLS_KEY, the job option nats.tls.cert and .key, or a context's cert and key";

const origin = (s: NatsSettings, k: "ca" | "cert" | "key") => s.origin[k] ?? k;

/** Each PEM file parses and the client key belongs to the client certificate; else one line naming the setting. */
export function checkTlsFiles(s: NatsSettings, read: (key: "ca" | "cert" | "key") => Uint8Array): void {
  const parse = <T>(k: "ca" | "cert" | "key", what: string, f: (pem: Uint8Array) => T): T => {
    try {
      return f(read(k));
    } catch (e) {
      if (e instanceof WeirError) throw e;
      throw new WeirError(ErrorCode.InvalidOption, `NATS TLS ${what} ${s[k]} (from ${origin(s, k)}) is not a PEM ${what} (${(e as Error).message.replace(/^error:[0-9A-F]+:/, "")})`, { cause: e });
    }
  };
  if (s.ca !== undefined) parse("ca", "CA certificate", (pem) => new X509Certificate(pem));
  if (s.cert === undefined || s.key === undefined) return;
  const cert = parse("cert", "client certificate", (pem) => new X509Certificate(pem));
  const key: KeyObject = parse("key", "client key", (pem) => createPrivateKey({ key: Buffer.from(pem) }));
  if (!cert.checkPrivateKey(key)) {
    throw new WeirError(ErrorCode.InvalidOption, `NATS TLS client key ${s.key} (from ${origin(s, "key")}) does not belong to the client certificate ${s.cert} (from ${origin(s, "cert")})`);
  }
}

/** A hint naming the TLS settings for a connection failure over TLS, or "" when the failure is not about TLS. */
export function tlsFailureHint(reason: string, s: NatsSettings): string {
  if (/verify|self[- ]signed|certificate has expired|not yet valid|altnames|hostname\/ip/i.test(reason)) {
    return s.ca !== undefined
      ? `: the server's certificate is not signed by the CA ${s.ca} (from ${origin(s, "ca")})`
      : `: no CA is set, and the system's CAs do not trust the server's certificate (set it with ${CA_SOURCES})`;
  }
  if (/timeout/i.test(reason)) {
    // A server with `verify: true` closes the handshake of a client whose certificate it does not trust.
    return s.cert !== undefined
      ? `: over TLS, this is what a server that verifies clients does with a certificate it does not trust (the client certificate ${s.cert}, from ${origin(s, "cert")})`
      : `: over TLS, this is what a server that verifies clients does with a client that has no certificate (set one with ${CERT_SOURCES})`;
  }
  return "";
}
