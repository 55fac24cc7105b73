// The identity a worker process registers, writes history, holds send slots and logs under: `host:pid:6 hex`.
import type { WorkerIdentity } from './heartbeat.ts'

/**
 * The host and pid say where the process runs (on Fly the host is the machine's 14-hex id); the
 * random part tells apart processes that share both (a restarted container's process often gets
 * its predecessor's pid; replicas given one hostname may each be pid 1), so that the registry's key
 * and a send slot's holder (freeUnknownSlots frees the holder's slots it does not know) are one
 * process's. Six hex digits (16.7 M values). The claimed row version names the worker by its
 * shorter lease key (lease-key.ts), which the registry maps back to this id.
 */
export function workerIdentity(host: string, pid: number, version: string): WorkerIdentity {
  return { id: `${host}:${pid}:${crypto.randomUUID().slice(0, 6)}`, host, pid, version }
}
