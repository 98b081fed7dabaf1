/** @module nodus/serve: the service author's side of agentic services (kodosumi's ServeAPI, forms, InputsError, Launch and the Tracer). */
export { ServeAPI } from './api';
export type { ServeAPIOptions, EnterOptions, EnterRequest, EnterHandler, InputsOf, ListenOptions, ServeServer, OpenAPIDocument } from './api';
export * as forms from './forms';
export type { Model } from './forms';
export { InputsError } from './errors';
export { Launch } from './launch';
export type { Entrypoint } from './launch';
export type { Tracer } from './tracer';
