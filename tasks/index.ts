/**
 * @module nodus/tasks: typed tasks made of named steps, registered with the cluster and run through the gateway's
 * `/api/tasks` or `nodus tasks run`. It loads no runtime, so the CLI reads a task module's schemas without joining the cluster.
 */
export { task, step } from './define';
export type { Task, TaskOptions, TaskFunction, TaskResources, StepOptions } from './define';
