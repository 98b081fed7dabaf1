/** @module nodus: a Ray-style distributed runtime for Node.js. The whole public API. */
export { init, shutdown, get, put, wait, cancel, getRuntimeContext } from './api';
export type { ClusterInfo, GetOptions, WaitOptions, RuntimeContextInfo } from './api';
export { remote } from './remote';
export type { RemoteFunction, RemoteArgs } from './remote';
export { ObjectRef } from './object-ref';
export type { Ref } from './object-ref';
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
} from './errors';
export type { RemoteOptions, InitOptions } from './options';
export type { Resources } from './protocol';
