/** @module The task platform over HTTP: discovery of registered tasks, and runs (start, read, list, stream, cancel). */
import { Module } from '@nestjs/common';
import { TasksController } from './tasks.controller';
import { TasksService } from './tasks.service';

/** `/api/tasks...` and `/api/runs...`; a run's events and cancel go through the outputs module's services. */
@Module({ controllers: [TasksController], providers: [TasksService] })
export class TasksModule {}
