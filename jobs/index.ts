/**
 * @module nodus/jobs: Ray's job API. A job is an entrypoint command run as a driver process on the cluster (on the
 * head's node, or on a node with the resources it asks for), with its working dir shipped there; its status, exit
 * code and log live in Redis. The CLI (`nodus job ...`) and the gateway (`/api/jobs`) use the same functions.
 */
export { submitJob, getJob, listJobs, stopJob, waitForJob, jobLogs } from './client';
export type { JobClientOptions, JobLogEntry, SubmittedJob } from './client';
export type { SubmitJobOptions } from './options';
export { JobNotFoundError } from './errors';
export type { JobInfo, JobStatus } from '../runtime/protocol/jobs';
