/** @module nodus/serving: Cornserve-style model serving — tasks, unit tasks on model hosts, apps. */
export { Task } from './task';
export { EncoderTask, LLMTask, Modality, UnitTask, directHolder } from './unit-tasks';
export type { UnitOptions } from './unit-tasks';
export { registerApp, unregisterApp, invokeApp, streamApp, listApps } from './apps';
export { scaleDeployment, listDeployments, releaseHolder } from './deployments';
