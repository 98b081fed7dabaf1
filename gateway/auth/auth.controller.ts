/** @module Login, logout, the current user, API keys and (for admins) new users. */
import { Body, Controller, Get, HttpCode, Post, Req, Res } from '@nestjs/common';
import type { Request, Response } from 'express';
import { z } from 'zod';
import { parseWith } from '../common/body';
import { AuthService, SESSION_COOKIE } from './auth.service';
import { AdminOnly, CurrentUser, Public, type AuthUser } from './decorators';

const LoginBody = z.object({ name: z.string().min(1), password: z.string().min(1) });
const NewUserBody = z.object({
  name: z.string().regex(/^[A-Za-z0-9_.@-]{1,64}$/, 'letters, digits and _ . @ - only, at most 64'),
  password: z.string().min(8, 'at least 8 characters'),
  admin: z.boolean().optional(),
});

/** `/api/login`, `/logout`, `/api/me`, `/api/keys`, `/api/users`. */
@Controller()
export class AuthController {
  constructor(private readonly auth: AuthService) {}

  /** Body `{ name, password }` as JSON or a form; sets the session cookie. */
  @Public()
  @Post('api/login')
  @HttpCode(200)
  async login(@Body() body: unknown, @Req() req: Request, @Res({ passthrough: true }) res: Response): Promise<AuthUser> {
    const { name, password } = parseWith(LoginBody, body);
    const { user, token, expiresAt } = await this.auth.login(name, password, req.ip ?? req.socket.remoteAddress ?? 'unknown');
    res.cookie(SESSION_COOKIE, token, { httpOnly: true, sameSite: 'lax', path: '/', expires: new Date(expiresAt), secure: req.secure });
    return user;
  }

  @Public()
  @Get('logout')
  logout(@Res({ passthrough: true }) res: Response): { loggedOut: true } {
    res.clearCookie(SESSION_COOKIE, { httpOnly: true, sameSite: 'lax', path: '/' });
    return { loggedOut: true };
  }

  @Get('api/me')
  me(@CurrentUser() user: AuthUser): AuthUser {
    return user;
  }

  /** A new API key for the caller, shown this once; send it as `x-nodus-api-key`. */
  @Post('api/keys')
  async createKey(@CurrentUser() user: AuthUser): Promise<{ key: string; user: string }> {
    return { key: await this.auth.createApiKey(user.name), user: user.name };
  }

  @AdminOnly()
  @Post('api/users')
  createUser(@Body() body: unknown): Promise<AuthUser> {
    const { name, password, admin } = parseWith(NewUserBody, body);
    return this.auth.createUser(name, password, admin ?? false);
  }
}
