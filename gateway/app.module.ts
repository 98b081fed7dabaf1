/** @module The gateway's root module: one module per concern over a shared context, every body read by one middleware. */
import { Module, type DynamicModule, type MiddlewareConsumer, type NestModule } from '@nestjs/common';
import { AppsModule } from './apps/apps.module';
import { AuthModule } from './auth/auth.module';
import { BodyMiddleware } from './common/body';
import { CommonModule } from './common/common.module';
import type { GatewayContext } from './common/context';
import { FlowsModule } from './flows/flows.module';
import { JobsModule } from './jobs/jobs.module';
import { OutputsModule } from './outputs/outputs.module';
import { PanelModule } from './panel/panel.module';
import { TasksModule } from './tasks/tasks.module';

/** Imports one module per concern; build it with AppModule.forRoot(ctx). */
@Module({})
export class AppModule implements NestModule {
  /** The application for one gateway context (made by startGateway). */
  static forRoot(ctx: GatewayContext): DynamicModule {
    return { module: AppModule, imports: [CommonModule.forRoot(ctx), AuthModule, FlowsModule, OutputsModule, AppsModule, PanelModule, TasksModule, JobsModule] };
  }

  configure(consumer: MiddlewareConsumer): void {
    consumer.apply(BodyMiddleware).forRoutes('{*path}');
  }
}
