// A PEM file a variable names (the Graph certificate or key, a database URL's sslrootcert, sslcert or sslkey), checked before anything reads it.
import { closeSync, constants, fstatSync, openSync, type Stats } from 'node:fs'

/** A PEM file's largest: a certificate chain or a key is a few KiB. */
const PEM_FILE_MAX_BYTES = 1024 * 1024

/**
 * Why `path` is no PEM file to read (it cannot be opened; a device, a FIFO or a directory; more than
 * a PEM holds), or null. Read whole and synchronously, a character device never ends (/dev/zero
 * until the memory ran out), a FIFO or /dev/stdin waits for a writer, and a log file named by
 * mistake is read whole. Opened without blocking (a FIFO with no writer), then only stat'ed.
 */
export function pemFileProblem(path: string): string | null {
  let fd: number
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK)
  } catch (e) {
    const code = (e as { code?: unknown }).code
    return `cannot be read (${typeof code === 'string' ? code : 'error'})`
  }
  try {
    const s = fstatSync(fd)
    if (!s.isFile()) return `is not a regular file (${kindOf(s)})`
    if (s.size > PEM_FILE_MAX_BYTES) {
      return `is ${s.size} bytes, more than a PEM file holds (at most 1 MiB)`
    }
    return null
  } finally {
    closeSync(fd)
  }
}

function kindOf(s: Stats): string {
  if (s.isDirectory()) return 'a directory'
  if (s.isCharacterDevice()) return 'a character device'
  if (s.isFIFO()) return 'a FIFO'
  if (s.isSocket()) return 'a socket'
  if (s.isBlockDevice()) return 'a block device'
  return 'not a file'
}
