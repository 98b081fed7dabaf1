/** @module Errors of nodus/jobs. */
import { NodusError } from '../runtime';

/** No job has that id (or it ended more than 7 days ago and was deleted). */
export class JobNotFoundError extends NodusError {
  override readonly code = 'JOB_NOT_FOUND';
}
