/** @module Route markers (public, admin only) and the logged-in user of a request. */
import { SetMetadata, createParamDecorator, type ExecutionContext } from '@nestjs/common';
import type { Request } from 'express';

/** Who made a request, as the auth guard found them. */
export interface AuthUser {
  name: string;
  admin: boolean;
}

export const PUBLIC_ROUTE = 'nodus:public';
export const ADMIN_ROUTE = 'nodus:admin';

/** The route needs no login. */
export const Public = () => SetMetadata(PUBLIC_ROUTE, true);
/** The route needs a logged-in admin. */
export const AdminOnly = () => SetMetadata(ADMIN_ROUTE, true);

const users = new WeakMap<Request, AuthUser>();

/** Remembers the user of a request (the guard does). */
export function setRequestUser(req: Request, user: AuthUser): void {
  users.set(req, user);
}

/** The user of a request the guard let through. */
export function requestUser(req: Request): AuthUser {
  const user = users.get(req);
  if (!user) throw new Error('requestUser() on a route the auth guard did not check (marked @Public?)');
  return user;
}

/** Injects the logged-in user into a handler parameter. */
export const CurrentUser = createParamDecorator((_data: unknown, ctx: ExecutionContext) => requestUser(ctx.switchToHttp().getRequest<Request>()));
