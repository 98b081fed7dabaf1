/** @module nodus: a Ray-style distributed runtime for Node.js. The whole public API. */
export { init, shutdown, get, put, wait, cancel, getRuntimeContext } from './api';
export type { ClusterInfo, GetOptions, WaitOptions, RuntimeContextInfo } from './api';
export { remote } from './remote';
export type { RemoteFunction, RemoteArgs, RemoteResult } from './remote';
export { getActor, kill } from './actor';
export { placementGroup, removePlacementGroup, PlacementGroup } from './placement-group';
export type { PlacementGroupOptions } from './placement-group';
export type { ActorHandle, ActorClass, ActorMethod } from './actor';
export { ObjectRef } from './object-ref';
export type { Ref, ObjectRefGenerator } from './object-ref';
export {
  NodusError,
  ConfigError,
  SerializationError,
  TaskError,
  WorkerCrashedError,
  GetTimeoutError,
  TaskCancelledError,
  ObjectLostError,
  NotInitializedError,
  ClusterError,
  ActorDiedError,
  ObjectStoreFullError,
  RuntimeEnvError,
  OutOfMemoryError,
  TaskUnschedulableError,
} from './errors';
export type { RemoteOptions, InitOptions, ActorOptions, RuntimeEnv, SchedulingStrategy, RetryExceptions } from './options';
export type { Resources, LabelSelector, PlacementStrategy } from './protocol';
