/** @module Registered services, their entry points, and the proxy that reaches them. */
import { Module } from '@nestjs/common';
import { FlowsController, ProxyController } from './flows.controller';
import { FlowsService } from './flows.service';
import { ProxyService } from './proxy.service';

/** Flows, their registration and the proxy. */
@Module({
  controllers: [FlowsController, ProxyController],
  providers: [FlowsService, ProxyService],
})
export class FlowsModule {}
