// TLS settings checked before connecting, and TLS failures told in terms of the settings: the client's
// own words ("PEM routines::no start line", "unable to verify the first certificate", a bare "timeout"
// when the server drops a handshake without a client certificate it trusts) name no file and no setting.

import { X509Certificate, createPrivateKey, type KeyObject } from "node:crypto";
import { checkServerIdentity, type PeerCertificate } from "node:tls";
import type { Socket } from "node:net";
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

// Node's words for a server certificate the client refused (OpenSSL's X509 verify errors).
const UNTRUSTED = /unable to (verify|get (local )?issuer)|self[- ]signed|not trusted|invalid ca|certificate signature failure|unable to decrypt certificate|unsupported certificate purpose|certificate rejected|path length|verify/i;
const OUT_OF_DATE = /certificate has expired|not yet valid|certificate revoked/i;
const WRONG_HOST = /altnames|hostname\/ip/i;

/**
 * A hint naming the TLS settings for a connection failure, or "" when the failure is not about TLS.
 * `tlsAsked`: the settings asked for TLS; without, a server that requires it still upgrades the connection.
 */
export function tlsFailureHint(reason: string, s: NatsSettings, tlsAsked = true): string {
  const requires = tlsAsked ? "" : "the server requires TLS, ";
  const caChecked = s.ca !== undefined ? `the CA checked: ${s.ca} (from ${origin(s, "ca")})` : `no CA is set (${CA_SOURCES}), the system's CAs were checked`;
  if (WRONG_HOST.test(reason)) return `: ${requires}the server's certificate does not name the host in the URL; ${caChecked}`;
  if (OUT_OF_DATE.test(reason)) return `: ${requires}the server's certificate is expired, not yet valid or revoked; ${caChecked}`;
  if (UNTRUSTED.test(reason)) {
    return s.ca !== undefined
      ? `: ${requires}the server's certificate is not signed by the CA ${s.ca} (from ${origin(s, "ca")})`
      : `: ${requires}no CA is set, and the system's CAs do not trust the server's certificate (set it with ${CA_SOURCES})`;
  }
  // A bare timeout without TLS settings is as likely an unreachable server: no TLS hint then.
  if (tlsAsked && /timeout/i.test(reason)) {
    // A server with `verify: true` closes the handshake of a client whose certificate it does not trust.
    return s.cert !== undefined
      ? `: over TLS, this is what a server that verifies clients does with a certificate it does not trust (the client certificate ${s.cert}, from ${origin(s, "cert")})`
      : `: over TLS, this is what a server that verifies clients does with a client that has no certificate (set one with ${CERT_SOURCES})`;
  }
  return "";
}

/**
 * The server certificate is checked against the host of the URL, as the nats CLI (nats.go) does. The
 * client gives Node no name for a server URL with an IP address (SNI takes none), and Node then checks
 * the certificate against "localhost" when upgrading the connection: a certificate naming only the IP
 * was refused ("Host: localhost. is not in the cert's altnames"), one for localhost accepted for any IP.
 * Node calls this as a method of the connection's TLS options, which hold the socket when upgrading.
 */
export function serverIdentity(this: { servername?: string; socket?: Socket } | undefined, host: string, cert: PeerCertificate): Error | undefined {
  const ip = this && !this.servername ? this.socket?.remoteAddress : undefined;
  return checkServerIdentity(ip ?? host, cert);
}
