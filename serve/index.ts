/** @module nodus/serve: the service author's side of agentic services (kodosumi's ServeAPI, forms, InputsError). */
export { ServeAPI } from './api';
export type { ServeAPIOptions, EnterOptions, EnterRequest, EnterHandler, InputsOf, ListenOptions, ServeServer, OpenAPIDocument } from './api';
export * as forms from './forms';
export type { Model } from './forms';
export { InputsError } from './errors';
