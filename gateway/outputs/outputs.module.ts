/** @module Executions as users see them: status, events (live, over one shared reader), cancel, timeline. */
import { Module } from '@nestjs/common';
import { OutputsController } from './outputs.controller';
import { OutputsService } from './outputs.service';
import { StreamService } from './stream.service';

/** Status, events, streams, cancel and the timeline. */
@Module({
  controllers: [OutputsController],
  providers: [OutputsService, StreamService],
})
export class OutputsModule {}
