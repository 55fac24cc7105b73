// The identity a worker process claims, writes history and logs under: `host:pid:8 hex`.
import type { WorkerIdentity } from './heartbeat.ts'

/**
 * The host and pid say where the process runs (on Fly the host is the machine's 14-hex id); the
 * random part tells apart processes that share both (a restarted container's process often gets
 * its predecessor's pid), so the registry's key is one per process.
 */
export function workerIdentity(host: string, pid: number, version: string): WorkerIdentity {
  return { id: `${host}:${pid}:${crypto.randomUUID().slice(0, 8)}`, host, pid, version }
}
