/** @module The panel: the gateway's pages for people (login, flows, forms, live executions, timeline, routes) at the same address as its API. */
import { Module, RequestMethod, type MiddlewareConsumer, type NestModule } from '@nestjs/common';
import { AuthModule } from '../auth/auth.module';
import { PanelController, TimelinePage } from './panel.controller';
import { PanelService } from './panel.service';
import { PanelErrorFilter } from './respond';

/** The panel's pages and assets; GET /timeline serves its page to browsers and stays the JSON API for everyone else. */
@Module({
  imports: [AuthModule],
  controllers: [PanelController],
  providers: [PanelService, PanelErrorFilter],
})
export class PanelModule implements NestModule {
  configure(consumer: MiddlewareConsumer): void {
    consumer.apply(TimelinePage).forRoutes({ path: 'timeline', method: RequestMethod.GET });
  }
}
