/** @module The gateway's own OpenAPI 3.1 document, written by hand: the routes are few and their answers are the wire contract. */

const json = (schema: object) => ({ content: { 'application/json': { schema } } });
const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const ok = (description: string, schema: object = { type: 'object' }) => ({ '200': { description, ...json(schema) } });
const errors = (...codes: number[]) => Object.fromEntries(codes.map((c) => [String(c), { description: 'error', ...json(ref('Error')) }]));
const fidParam = { name: 'fid', in: 'path', required: true, schema: { type: 'string' } };
const urlBody = { required: true, ...json({ type: 'object', required: ['url'], properties: { url: { type: 'string', format: 'uri' } } }) };

/** Served at `GET /openapi.json`. */
export const GATEWAY_OPENAPI = {
  openapi: '3.1.0',
  info: {
    title: 'nodus gateway',
    version: '1',
    description:
      'Login, registered agentic services (flows) and the proxy to them, and the executions they launch. ' +
      'Every route but /health, /openapi.json, /api/login and /logout needs the session cookie (nodus_session) or an x-nodus-api-key header.',
  },
  components: {
    securitySchemes: {
      session: { type: 'apiKey', in: 'cookie', name: 'nodus_session' },
      apiKey: { type: 'apiKey', in: 'header', name: 'x-nodus-api-key' },
    },
    schemas: {
      Error: {
        type: 'object',
        required: ['statusCode', 'error', 'message'],
        properties: { statusCode: { type: 'integer' }, error: { type: 'string' }, message: { type: 'string' } },
      },
      User: { type: 'object', properties: { name: { type: 'string' }, admin: { type: 'boolean' } } },
      Flow: {
        type: 'object',
        properties: Object.fromEntries(
          ['uid', 'method', 'path', 'url', 'summary', 'description', 'author', 'organization', 'version', 'source', 'base'].map((k) => [k, { type: 'string' }]),
        ),
      },
      Source: {
        type: 'object',
        properties: {
          url: { type: 'string' },
          registeredAt: { type: 'integer' },
          refreshedAt: { type: 'integer' },
          flows: { type: 'array', items: ref('Flow') },
          error: { type: 'string' },
        },
      },
      Event: { type: 'object', properties: { id: { type: 'string' }, kind: { type: 'string' }, data: {}, at: { type: 'integer' } } },
      Status: {
        type: 'object',
        properties: {
          fid: { type: 'string' },
          status: { enum: ['starting', 'running', 'finished', 'error', 'cancelled'] },
          owner: { type: 'string' },
          summary: { type: 'string' },
          flow: { type: 'string' },
          inputs: {},
          createdAt: { type: 'integer' },
          startedAt: { type: ['integer', 'null'] },
          endedAt: { type: ['integer', 'null'] },
          error: { type: ['string', 'null'] },
          final: {},
        },
      },
    },
  },
  security: [{ session: [] }, { apiKey: [] }],
  paths: {
    '/health': { get: { summary: 'Liveness and Redis reachability', security: [], responses: ok('ok', { type: 'object' }) } },
    '/openapi.json': { get: { summary: 'This document', security: [], responses: ok('the document') } },
    '/api/login': {
      post: {
        summary: 'Log in; sets the nodus_session cookie',
        security: [],
        requestBody: { required: true, ...json({ type: 'object', required: ['name', 'password'], properties: { name: { type: 'string' }, password: { type: 'string' } } }) },
        responses: { ...ok('logged in', ref('User')), ...errors(400, 401, 429) },
      },
    },
    '/logout': { get: { summary: 'Clears the session cookie', security: [], responses: ok('logged out') } },
    '/api/me': { get: { summary: 'The logged-in user', responses: { ...ok('the user', ref('User')), ...errors(401) } } },
    '/api/keys': { post: { summary: 'A new API key for the caller, shown once', responses: { '201': { description: '{ key, user }', ...json({ type: 'object' }) }, ...errors(401) } } },
    '/api/users': { post: { summary: 'Add a user (admins)', responses: { '201': { description: 'the user', ...json(ref('User')) }, ...errors(400, 403, 409) } } },
    '/flow': {
      get: {
        summary: 'Registered entry points',
        parameters: [
          { name: 'q', in: 'query', schema: { type: 'string' } },
          { name: 'tag', in: 'query', schema: { type: 'string' } },
        ],
        responses: ok('flows', { type: 'array', items: ref('Flow') }),
      },
    },
    '/flow/sources': { get: { summary: 'Registered sources (admins)', responses: ok('sources', { type: 'array', items: ref('Source') }) } },
    '/flow/register': {
      post: { summary: 'Register an openapi.json or /-/routes URL (admins)', requestBody: urlBody, responses: { ...ok('the source and its flows', ref('Source')), ...errors(400, 403, 502) } },
      delete: { summary: 'Unregister a URL (admins)', requestBody: urlBody, responses: { ...ok('removed'), ...errors(403, 404) } },
    },
    '/flow/refresh': { post: { summary: 'Fetch every registered source again (admins)', responses: ok('sources', { type: 'array', items: ref('Source') }) } },
    '/-/{host}/{port}/{path}': {
      get: { summary: "An entry point's form ({ meta, elements }), from its service", responses: { ...ok('the form'), ...errors(403, 502) } },
      post: {
        summary: 'Launch: forwarded to the service with the signed user header',
        responses: { ...ok('{ fid, status, stream, main } or { errors }'), ...errors(403, 502, 504) },
      },
      parameters: ['host', 'port', 'path'].map((name) => ({ name, in: 'path', required: true, schema: { type: 'string' } })),
    },
    '/outputs/status/{fid}': { get: { parameters: [fidParam], summary: "An execution's status", responses: { ...ok('status', ref('Status')), ...errors(404) } } },
    '/outputs/stream/{fid}': {
      get: {
        parameters: [fidParam, { name: 'Last-Event-ID', in: 'header', schema: { type: 'string' } }, { name: 'lastEventId', in: 'query', schema: { type: 'string' } }],
        summary: 'Server-sent events: each event (id, event: kind, data: { kind, data, at }), then event: eof after the final status',
        responses: { '200': { description: 'event stream', content: { 'text/event-stream': {} } }, ...errors(400, 404) },
      },
    },
    '/outputs/main/{fid}': { get: { parameters: [fidParam], summary: 'Markdown, html, text, result and final events', responses: ok('events') } },
    '/outputs/stdio/{fid}': { get: { parameters: [fidParam], summary: 'stdout and stderr events', responses: ok('events') } },
    '/outputs/{fid}': { delete: { parameters: [fidParam], summary: 'Cancel', responses: { ...ok('{ fid, status }'), ...errors(404, 409) } } },
    '/timeline': {
      get: {
        summary: "The caller's executions (an admin's: all), newest first",
        parameters: ['q', 'status', 'offset', 'limit'].map((name) => ({ name, in: 'query', schema: { type: 'string' } })),
        responses: ok('{ items, total, offset, limit }'),
      },
    },
    // Model serving (nodus/serving).
    '/app/register': {
      post: {
        summary: 'Register an app module ({ source, alias? }): deploys its unit tasks; progress as SSE with Accept: text/event-stream (admins)',
        requestBody: { required: true, ...json({ type: 'object', required: ['source'], properties: { source: { type: 'string' }, alias: { type: 'string' } } }) },
        responses: { ...ok('{ app, progress }'), ...errors(400, 403) },
      },
    },
    '/app/invoke/{id}': {
      post: {
        parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'string' }, description: 'app id or alias' }],
        summary: "Invoke an app's serve(request): JSON, or NDJSON (one line per item) when serve streams",
        responses: { '200': { description: 'result', content: { 'application/json': {}, 'application/x-ndjson': {} } }, ...errors(400) },
      },
    },
    '/app/list': { get: { summary: 'Apps and deployments (with each host\'s node and device)', responses: ok('{ apps, deployments }') } },
    '/app/unregister/{id}': { post: { parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'string' } }], summary: 'Unregister an app; unused deployments are torn down (admins)', responses: ok('{ app, progress }') } },
    '/tasks/invoke': {
      post: {
        summary: 'Invoke a unit task directly: { task: { kind: encoder | llm, modelId, ... }, input }; ObjectRefs come back as { ref: id }',
        responses: { ...ok('output'), ...errors(400) },
      },
    },
    '/tasks/list': { get: { summary: 'Deployments of unit tasks', responses: ok('deployments') } },
    '/task/scale': { post: { summary: '{ deployment, replicas } (admins)', responses: { ...ok('deployment'), ...errors(400, 403) } } },
    // The task platform (nodus/tasks).
    '/api/tasks': { get: { summary: 'Registered tasks with their parameter and result JSON Schemas', responses: ok('tasks') } },
    '/api/tasks/{slug}': { get: { parameters: [{ name: 'slug', in: 'path', required: true, schema: { type: 'string' } }], summary: 'One task, with its versions', responses: { ...ok('task'), ...errors(404) } } },
    '/api/tasks/{slug}/runs': {
      post: {
        parameters: [{ name: 'slug', in: 'path', required: true, schema: { type: 'string' } }, { name: 'Idempotency-Key', in: 'header', schema: { type: 'string' } }],
        summary: 'Start a run: { parameters } → 202 { runId }; 422 with per-field messages',
        responses: { '202': { description: 'started', ...json({ type: 'object' }) }, ...errors(404, 409, 422) },
      },
    },
    '/api/runs': { get: { parameters: ['task', 'status', 'limit', 'cursor'].map((name) => ({ name, in: 'query', schema: { type: 'string' } })), summary: 'Runs, newest first', responses: ok('{ items, next }') } },
    '/api/runs/{id}': {
      get: { parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'string' } }], summary: 'A run: status, parameters, steps, results', responses: { ...ok('run'), ...errors(404) } },
      delete: { parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'string' } }], summary: 'Cancel a run', responses: { ...ok('{ runId, status }'), ...errors(404, 409) } },
    },
    '/api/runs/{id}/events': { get: { parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'string' } }], summary: 'The run\'s events (SSE, as /outputs/stream)', responses: { '200': { description: 'event stream', content: { 'text/event-stream': {} } } } } },
    // Jobs (nodus/jobs, Ray's job API): admins only.
    '/api/jobs/packages': {
      post: {
        summary: 'Store a working dir sent as a .tar.gz body (content-type application/gzip) → 201 { runtimeEnv: { pkg, lock? }, files, bytes, uploaded } (admins)',
        requestBody: { required: true, content: { 'application/gzip': { schema: { type: 'string', format: 'binary' } } } },
        responses: { '201': { description: 'stored', ...json({ type: 'object' }) }, ...errors(400, 403, 413) },
      },
    },
    '/api/jobs': {
      post: {
        summary: 'Submit a job: { entrypoint, runtimeEnv?: { pkg?, lock?, env? }, numCpus?, numGpus?, resources? } → 201 { jobId, status, job, logs } (admins)',
        responses: { '201': { description: 'submitted', ...json({ type: 'object' }) }, ...errors(400, 403) },
      },
      get: { parameters: ['status', 'limit'].map((name) => ({ name, in: 'query', schema: { type: 'string' } })), summary: 'Jobs, newest first (admins)', responses: { ...ok('{ jobs }'), ...errors(403) } },
    },
    '/api/jobs/{id}': { get: { parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'string' } }], summary: 'A job: status, exit code, node, times, message (admins)', responses: { ...ok('job'), ...errors(403, 404) } } },
    '/api/jobs/{id}/logs': {
      get: {
        parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'string' } }, { name: 'Last-Event-ID', in: 'header', schema: { type: 'string' } }],
        summary: "The job's log as SSE: stdout, stderr and status events until it ends, then eof (admins)",
        responses: { '200': { description: 'event stream', content: { 'text/event-stream': {} } }, ...errors(403, 404) },
      },
    },
    '/api/jobs/{id}/stop': { post: { parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'string' } }], summary: 'Stop a job (SIGTERM to its driver, SIGKILL after 3 s) (admins)', responses: { ...ok('job'), ...errors(403, 404, 409) } } },
  },
} as const;
