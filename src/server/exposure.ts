import net from 'node:net';
import { ConfigError, type SecurityConfig } from '../config.ts';

/**
 * Who can reach the server and from which browser pages: the start-up refusal to serve a
 * non-loopback address without authentication, and the default origin allow-list.
 */

export class ExposureError extends ConfigError {
  override name = 'ExposureError';
}

/** True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost). */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost' || h.endsWith('.localhost')) return true;
  if (net.isIPv4(h)) return h.startsWith('127.');
  if (net.isIPv6(h)) return h === '::1' || /^::ffff:127\./.test(h);
  return false;
}

/** A wildcard bind (0.0.0.0, ::) listens on every interface, loopback included. */
export function isWildcardHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '');
  return h === '0.0.0.0' || h === '::' || h === '';
}

export function authConfigured(security: SecurityConfig): boolean {
  return security.apiTokens.length > 0 || Boolean(security.jwt);
}

/**
 * Refuses to serve every interface's clients with no authentication: binding to a non-loopback
 * HOST needs tokens or JWT, or an explicit LAKETS_ALLOW_ANONYMOUS=true.
 */
export function assertSafeExposure(config: { host: string; security: SecurityConfig }): void {
  if (isLoopbackHost(config.host) || authConfigured(config.security) || config.security.allowAnonymous) return;
  throw new ExposureError(
    `refusing to serve HOST=${config.host} without authentication: set LAKETS_API_TOKENS or LAKETS_JWT_SECRET/LAKETS_JWT_PUBLIC_KEY, or LAKETS_ALLOW_ANONYMOUS=true to serve anyone on the network`,
  );
}

function hostForUrl(host: string): string {
  const h = host.replace(/^\[|\]$/g, '');
  return net.isIPv6(h) ? `[${h}]` : h;
}

/**
 * The browser origins allowed by default: the server's own (http://HOST:PORT) and, when loopback
 * can reach it, the 127.0.0.1 / localhost / [::1] spellings of it — the ones a browser on this
 * machine uses for the dashboard and GraphiQL.
 */
export function defaultOrigins(host: string, port: number): string[] {
  const origins = new Set<string>();
  if (!isWildcardHost(host)) origins.add(`http://${hostForUrl(host)}:${port}`);
  if (isLoopbackHost(host) || isWildcardHost(host)) {
    for (const h of ['127.0.0.1', 'localhost', '[::1]']) origins.add(`http://${h}:${port}`);
  }
  return [...origins];
}

/** The hostname of a Host header ("127.0.0.1:4000", "[::1]:4000", "localhost"), or undefined. */
function hostnameOf(hostHeader: string): string | undefined {
  try {
    return new URL(`http://${hostHeader}`).hostname;
  } catch {
    return undefined;
  }
}

/** The origin allow-list in force: LAKETS_CORS_ORIGINS when set, else the defaults above. */
export class OriginPolicy {
  private allowed: Set<string>;
  private readonly loopbackOnly: boolean;

  constructor(
    private readonly configured: readonly string[] | undefined,
    host: string,
    port: number,
  ) {
    this.allowed = new Set(configured ?? defaultOrigins(host, port));
    this.loopbackOnly = isLoopbackHost(host);
  }

  /**
   * On a loopback bind, requests must name a loopback host: a web page whose own domain was made
   * to resolve to 127.0.0.1 (DNS rebinding) would otherwise be "same origin" with this server and
   * read it without ever sending a foreign Origin.
   */
  allowsHost(hostHeader: string | undefined): boolean {
    if (!this.loopbackOnly) return true;
    if (!hostHeader) return false;
    const name = hostnameOf(hostHeader);
    return name !== undefined && isLoopbackHost(name);
  }

  /** Called once the real port is known (PORT=0 binds an ephemeral one). */
  bound(host: string, port: number): void {
    if (!this.configured) this.allowed = new Set(defaultOrigins(host, port));
  }

  get origins(): string[] {
    return [...this.allowed];
  }

  /** Requests without an Origin header do not come from a web page's script and are not CORS's concern. */
  allows(origin: string | null | undefined): boolean {
    return origin === undefined || origin === null || this.allowed.has(origin);
  }
}
