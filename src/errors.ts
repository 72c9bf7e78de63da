/**
 * Coded errors of src/: every code in one table, and the base class that carries one (STYLE.md
 * "Errors": stable codes, one table; branch on `code`, never on message text). protocol/ keeps
 * its own table and class (protocol/errors.ts), since the codec depends on nothing of ours.
 *
 * A module that throws keeps short names for its codes beside its class (SPOOL_ERROR_CODES in
 * pipeline/spool.ts, ...); `satisfies` there checks each one is listed here.
 */

/** Every code: what it means, and where it is thrown. */
export const ERROR_CODES = {
  ICAP_ERR_CONFIG: 'The configuration file is unreadable or invalid; the message lists every problem (config/errors.ts).',
  ICAP_ERR_HASH_LIST_INVALID: 'A hash list of the embedded engine has a bad line or cannot be read (backends/builtin/hash-list.ts).',
  ICAP_ERR_SPOOL_CLOSED: 'write() or end() after end() or dispose(), or reading a disposed body (pipeline/spool.ts).',
  ICAP_ERR_SPOOL_IO: 'A spool temp file could not be created or written: ENOSPC, EACCES, a missing directory (pipeline/spool.ts).',
  ICAP_ERR_POOL_QUEUE_FULL: 'More scan tasks than worker threads + queue; the scan fails as overloaded (pipeline/worker-pool.ts).',
  ICAP_ERR_POOL_ABORTED: 'The caller aborted a worker task before it finished (pipeline/worker-pool.ts).',
  ICAP_ERR_POOL_CLOSED: 'The worker pool was destroyed before or while the task ran (pipeline/worker-pool.ts).',
  ICAP_ERR_POOL_TASK_FAILED: 'A worker task threw or its thread died; the original error is the cause (pipeline/worker-pool.ts).',
  ICAP_ERR_MD_UNREACHABLE: 'MetaDefender Core refused, reset or closed the connection before answering (backends/metadefender/core-endpoint.ts).',
  ICAP_ERR_MD_ABORTED: 'A MetaDefender Core call was aborted: timeout or abandoned transaction (backends/metadefender/core-endpoint.ts).',
  ICAP_ERR_MD_PROTOCOL: 'A MetaDefender Core answer broke HTTP or exceeded what we read (backends/metadefender/core-endpoint.ts).',
  ICAP_ERR_CLIENT_GONE: 'The ICAP client closed its connection while we were answering (server/response-sink.ts).',
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

/** An Error with a stable `code` from ERROR_CODES; subclasses add their context (file, line...). */
export class CodedError<C extends ErrorCode = ErrorCode> extends Error {
  readonly code: C;

  constructor(code: C, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}
