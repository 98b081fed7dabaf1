/** @module The global guard: every route needs a logged-in user unless marked @Public, and an admin if marked @AdminOnly. */
import { ForbiddenException, Injectable, UnauthorizedException, type CanActivate, type ExecutionContext } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { Request } from 'express';
import { AuthService } from './auth.service';
import { ADMIN_ROUTE, PUBLIC_ROUTE, setRequestUser } from './decorators';

/** Installed as APP_GUARD: finds the user (cookie or API key) and checks @Public / @AdminOnly. */
@Injectable()
export class AuthGuard implements CanActivate {
  constructor(
    private readonly reflector: Reflector,
    private readonly auth: AuthService,
  ) {}

  async canActivate(ctx: ExecutionContext): Promise<boolean> {
    const targets = [ctx.getHandler(), ctx.getClass()];
    if (this.reflector.getAllAndOverride<boolean>(PUBLIC_ROUTE, targets)) return true;
    const req = ctx.switchToHttp().getRequest<Request>();
    const user = await this.auth.userOf(req);
    if (!user) {
      throw new UnauthorizedException('Log in first: POST /api/login with {"name", "password"}, or send an API key in the x-nodus-api-key header.');
    }
    setRequestUser(req, user);
    if (this.reflector.getAllAndOverride<boolean>(ADMIN_ROUTE, targets) && !user.admin) {
      throw new ForbiddenException(`Only admins may do this, and ${user.name} is not one.`);
    }
    return true;
  }
}
