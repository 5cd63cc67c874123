import crypto from 'node:crypto';
import { jwtVerify, errors as joseErrors } from 'jose';
import { ConfigError, type SecurityConfig } from '../config.ts';
import { authConfigured } from './exposure.ts';

export type AuthResult = { ok: true; subject: string } | { ok: false; reason: string };

/**
 * Checks the bearer credential of a request (HTTP `Authorization` header, SSE, or graphql-ws's
 * `connectionParams.authorization`): one of LAKETS_API_TOKENS, or a JWT signed with the configured
 * secret or key. With neither configured every request is let through as "anonymous".
 */
export class Authenticator {
  readonly enabled: boolean;
  private readonly tokenDigests: Buffer[];
  private readonly jwtKey: crypto.KeyObject | undefined;
  private readonly jwtAlgorithms: string[];

  constructor(private readonly security: SecurityConfig) {
    this.enabled = authConfigured(security);
    // Tokens are compared as SHA-256 digests: equal lengths for timingSafeEqual, and a comparison
    // whose time does not depend on how many leading characters a guess got right.
    this.tokenDigests = security.apiTokens.map(digest);
    const jwt = security.jwt;
    if (jwt?.secret) {
      this.jwtKey = crypto.createSecretKey(Buffer.from(jwt.secret, 'utf8'));
      this.jwtAlgorithms = ['HS256'];
    } else if (jwt?.publicKey) {
      try {
        this.jwtKey = crypto.createPublicKey(jwt.publicKey.replace(/\\n/g, '\n'));
      } catch (err) {
        throw new ConfigError(`LAKETS_JWT_PUBLIC_KEY is not a PEM public key: ${(err as Error).message}`);
      }
      this.jwtAlgorithms = algorithmsFor(this.jwtKey);
    } else {
      this.jwtKey = undefined;
      this.jwtAlgorithms = [];
    }
  }

  /** `authorization` as sent: "Bearer <token or JWT>" (the scheme is case-insensitive). */
  async verify(authorization: unknown): Promise<AuthResult> {
    if (!this.enabled) return { ok: true, subject: 'anonymous' };
    if (typeof authorization !== 'string' || authorization.length > 8192) return { ok: false, reason: 'missing bearer token' };
    const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
    if (!match) return { ok: false, reason: 'missing bearer token' };
    const credential = match[1]!;
    if (this.matchesToken(credential)) return { ok: true, subject: 'token' };
    if (this.jwtKey && credential.split('.').length === 3) {
      try {
        const { payload } = await jwtVerify(credential, this.jwtKey, {
          algorithms: this.jwtAlgorithms,
          ...(this.security.jwt?.issuer ? { issuer: this.security.jwt.issuer } : {}),
          ...(this.security.jwt?.audience ? { audience: this.security.jwt.audience } : {}),
        });
        return { ok: true, subject: typeof payload.sub === 'string' ? `jwt:${payload.sub}` : 'jwt' };
      } catch (err) {
        return { ok: false, reason: err instanceof joseErrors.JWTExpired ? 'token expired' : 'invalid token' };
      }
    }
    return { ok: false, reason: 'invalid token' };
  }

  private matchesToken(credential: string): boolean {
    const given = digest(credential);
    let found = false;
    // No early exit: every configured token is compared whatever the outcome.
    for (const expected of this.tokenDigests) found = crypto.timingSafeEqual(given, expected) || found;
    return found;
  }
}

function digest(value: string): Buffer {
  return crypto.createHash('sha256').update(value, 'utf8').digest();
}

/** The JWS algorithms a public key can verify; never "none", never HMAC with a public key. */
function algorithmsFor(key: crypto.KeyObject): string[] {
  switch (key.asymmetricKeyType) {
    case 'rsa':
      return ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512'];
    case 'rsa-pss':
      return ['PS256', 'PS384', 'PS512'];
    case 'ec': {
      const curve = key.asymmetricKeyDetails?.namedCurve;
      return curve === 'secp384r1' ? ['ES384'] : curve === 'secp521r1' ? ['ES512'] : ['ES256'];
    }
    case 'ed25519':
    case 'ed448':
      return ['EdDSA', 'Ed25519'];
    default:
      throw new ConfigError(`LAKETS_JWT_PUBLIC_KEY: unsupported key type ${key.asymmetricKeyType ?? 'unknown'}`);
  }
}
