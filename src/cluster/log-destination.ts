/**
 * Log destination for a process of a cluster. All processes share one stdout; when that is a pipe
 * (systemd's journal, a container runtime, a test), one write(2) of at most PIPE_BUF bytes is
 * atomic, a longer one may be interleaved with another process's write: blocks of whole lines capped
 * at PIPE_BUF keep every line (shorter than 4 KiB) whole. A regular file shared by the processes
 * (one open file description, one offset) takes each write(2) whole, so there blocks stay large.
 */
import { FILE_BLOCK_BYTES, FILE_BLOCK_MIN_FILL, batchedStdout, type LogDestination } from '../observability/log-destination.js';

/** POSIX PIPE_BUF on Linux. */
const PIPE_BUF = 4096;

export function clusterLogDestination(): LogDestination {
  return batchedStdout({ minLength: FILE_BLOCK_MIN_FILL, fileBlockBytes: FILE_BLOCK_BYTES, pipeBlockBytes: PIPE_BUF });
}
