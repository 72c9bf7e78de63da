/**
 * Log destination for a process of a cluster. All processes share one stdout; when that is a pipe
 * (systemd's journal, a container runtime, a test), one write(2) of at most PIPE_BUF bytes is
 * atomic, a longer one may be interleaved with another process's write. pino's SonicBoom batches
 * whole lines into writes of at most `maxWrite` bytes, so capping that at PIPE_BUF keeps every line
 * (shorter than 4 KiB) whole.
 */
import { batchedStdout, type LogDestination } from '../observability/log-destination.js';

/** POSIX PIPE_BUF on Linux. */
const PIPE_BUF = 4096;

export function clusterLogDestination(): LogDestination {
  return batchedStdout({ minLength: PIPE_BUF / 2, maxWrite: PIPE_BUF });
}
