// The identity a worker process registers, writes history, holds send slots and logs under: `host:pid:6 hex`.

export interface WorkerIdentity {
  id: string
  host: string
  pid: number
  version: string
  /** The lease key its claimed rows name it by in this database, once registered (lease-key.ts). */
  readonly leaseKey?: string | null
  /**
   * GRAPH_REQUEST_TIMEOUT_SECONDS its sends run under, noted in its registry entry (sql/0070) for a
   * lookup of its interrupted sends (lookup-grace.ts); null or absent without one.
   */
  readonly requestTimeoutSeconds?: number | null
  /**
   * Its MAIL_FROM's pause key, noted in its registry entry (sql/0079): a probe owed for a mailbox no
   * live entry notes is cleared (stale-probes.ts). '' for none; null or absent is read as an older
   * binary's entry (its mailbox unknown: every owed probe kept while it beats).
   */
  readonly probeMailbox?: string | null
  /**
   * Its LEASE_SECONDS, noted in its registry entry (sql/0084): idle, it beats once per lease length,
   * so another worker judges it live by that (stale-probes.ts); null or absent: an older binary's.
   */
  readonly leaseSeconds?: number | null
  /**
   * While the provider refuses its credential for good (Graph: Entra's code, never its text): the
   * code and how long the refusal has stood, noted in its registry entry at each beat and as it
   * changes (sql/0198, credential-refusal-note.ts); and how long its cached token still serves
   * sends (a refusal met by the refresh ahead of the token's end), noted with it (sql/0202): 0 or
   * absent, none serves. Null or absent: not refused (an older binary notes nothing).
   */
  readonly credentialRefusal?: { code: string; forMs: number; servesForMs?: number } | null
  /**
   * Its newest recorded send not yet noted in its registry entry (sql/0201, last-send.ts): noted
   * at the next beat as now() less `agoMs`; null or absent: none to note (an older binary notes none).
   */
  readonly unnotedSend?: { atMs: number; agoMs: number } | null
}

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
