/**
 * @module CSRF tokens of the panel's forms. A logged-in form carries HMAC(secret, session token): another site cannot
 * read the HttpOnly session cookie, so it cannot make the token. The login form has no session yet: it carries
 * HMAC(secret, a random pre-login cookie) instead (login CSRF would log a victim into the attacker's account).
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/** Name of the hidden field every panel form posts its token in. */
export const CSRF_FIELD = '_csrf';
/** The random cookie a login form's token is bound to (HttpOnly, SameSite=Strict). */
export const LOGIN_CSRF_COOKIE = 'nodus_login_csrf';

/** The token of the forms of one session (the session cookie's value), or of one login form (its pre-login cookie). */
export function csrfToken(secret: string, purpose: 'session' | 'login', bound: string): string {
  return createHmac('sha256', secret).update(`csrf:${purpose}:${bound}`).digest('base64url');
}

/** True when `given` is the token for `bound`; compared in constant time. */
export function checkCsrf(secret: string, purpose: 'session' | 'login', bound: string | undefined, given: unknown): boolean {
  if (!bound || typeof given !== 'string' || !given) return false;
  const expected = Buffer.from(csrfToken(secret, purpose, bound));
  const got = Buffer.from(given);
  return got.length === expected.length && timingSafeEqual(got, expected);
}

/** A fresh value for the pre-login cookie. */
export function newLoginNonce(): string {
  return randomBytes(18).toString('base64url');
}
