// A PEM file a variable names (the Graph certificate or key, a database URL's sslrootcert, sslcert or sslkey), checked before anything reads it.
import { closeSync, constants, fstatSync, openSync, readFileSync, type Stats } from 'node:fs'

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

const BYTE_ORDER_MARK = Buffer.from([0xef, 0xbb, 0xbf])

/**
 * A byte order mark in a PEM's text, in the words every check of one says it: where (`where`: "at
 * its start", "at line N"), what it does there (`effect`) and how to drop it (`fix`).
 */
export function byteOrderMarkProblem(where: string, effect: string, fix: string): string {
  return `holds a byte order mark (U+FEFF, as a Windows editor saves "UTF-8 with BOM") ${where}: ${effect}; ${fix}`
}

/**
 * Why TLS would read no PEM block where file `path` (a PEM file pemFileProblem passed) has one, or
 * null: UTF-16 text (PowerShell 5's `>` and Out-File), or a byte order mark before a block (a
 * Windows editor's "UTF-8 with BOM", at the start or where two such files were joined), which
 * OpenSSL's PEM reader takes for part of that line and so skips the block. For a file the driver
 * reads itself (a database URL's): the Graph credential's reader drops a leading mark instead.
 */
export function pemEncodingProblem(path: string): string | null {
  let bytes: Buffer
  try {
    bytes = readFileSync(path)
  } catch {
    // What keeps it from being read is pemFileProblem's to name.
    return null
  }
  if ((bytes[0] === 0xff && bytes[1] === 0xfe) || (bytes[0] === 0xfe && bytes[1] === 0xff)) {
    return "is UTF-16 text (as PowerShell 5's > and Out-File save it), in which the driver's TLS finds no PEM block: save it as ASCII or UTF-8 (Out-File -Encoding ascii, or iconv -f UTF-16 -t UTF-8 <file> > <file>.utf8 && mv <file>.utf8 <file>)"
  }
  const at = bytes.indexOf(BYTE_ORDER_MARK)
  if (at < 0) return null
  const line = bytes.subarray(0, at).filter((b) => b === 0x0a).length + 1
  return byteOrderMarkProblem(
    line === 1 ? 'at its start' : `at line ${line}`,
    "the driver's TLS skips the PEM block it opens, and every connection would fail",
    "save the file without it (sed -i 's/\\xEF\\xBB\\xBF//g' <file>)",
  )
}
