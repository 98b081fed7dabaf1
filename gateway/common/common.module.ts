/** @module What every module of the gateway uses (its context), and the routes about the gateway itself: health and its API document. */
import { Controller, Get, Global, Module, type DynamicModule } from '@nestjs/common';
import { GATEWAY_OPENAPI } from '../openapi';
import { Public } from '../auth/decorators';
import { GatewayContext } from './context';

/** `GET /health` and `GET /openapi.json`: open to all, so that load balancers and clients need no login. */
@Controller()
export class MetaController {
  constructor(private readonly gw: GatewayContext) {}

  @Public()
  @Get('health')
  async health(): Promise<{ status: 'ok'; redis: 'ok' | 'unreachable' }> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, rej) => (timer = setTimeout(() => rej(new Error('timeout')), 1000)));
    const redis = await Promise.race([this.gw.redis.ping(), timeout])
      .then(() => 'ok' as const)
      .catch(() => 'unreachable' as const)
      .finally(() => clearTimeout(timer));
    return { status: 'ok', redis };
  }

  @Public()
  @Get('openapi.json')
  openapi(): unknown {
    return GATEWAY_OPENAPI;
  }
}

/** Provides the GatewayContext to every module. */
@Global()
@Module({})
export class CommonModule {
  static forRoot(ctx: GatewayContext): DynamicModule {
    return {
      module: CommonModule,
      controllers: [MetaController],
      providers: [{ provide: GatewayContext, useValue: ctx }],
      exports: [GatewayContext],
    };
  }
}
