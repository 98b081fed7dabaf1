/** @module An HTTP error that carries more than a status: headers (Retry-After) and fields (an execution's status). */
import { HttpException } from '@nestjs/common';

/** An HTTP error whose answer also sets headers and adds fields to the JSON body. */
export class HttpError extends HttpException {
  constructor(
    status: number,
    message: string,
    readonly extra: { headers?: Record<string, string>; fields?: Record<string, unknown> } = {},
  ) {
    super(message, status);
  }
}
