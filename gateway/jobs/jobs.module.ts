/** @module Jobs over HTTP (Ray's job REST API): submit, list, read, follow the log of and stop driver processes on the cluster. */
import { Module } from '@nestjs/common';
import { JobsController } from './jobs.controller';
import { JobsService } from './jobs.service';

/** `/api/jobs...`: admins only, since a job runs any command on the cluster. */
@Module({ controllers: [JobsController], providers: [JobsService] })
export class JobsModule {}
