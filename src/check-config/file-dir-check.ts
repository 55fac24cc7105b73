// Whether the file transport can write into MAIL_FILE_DIR: the directory writable, or makeable in its nearest existing parent.
import { accessSync, constants, type Stats, statSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { describe, type Findings } from './findings.ts'

/**
 * Looks without making anything: MAIL_FILE_DIR itself, or (not there yet, as the transport makes it
 * at the first mail) its nearest existing parent, must be a directory this process may write into.
 * Otherwise every row fails after its attempts (file_write_failed) once serve runs. `euid`: the
 * user the check runs as (root may write whatever the modes say: it reports who else may).
 */
export function checkFileDir(fileDir: string, euid = process.geteuid?.()): Findings {
  const path = resolve(fileDir)
  let at = path
  for (;;) {
    let stats: Stats
    try {
      stats = statSync(at)
    } catch (e) {
      const up = dirname(at)
      // Not there, or under a file (ENOTDIR): the parent says why.
      const code = (e as { code?: string }).code
      if ((code === 'ENOENT' || code === 'ENOTDIR') && up !== at) {
        at = up
        continue
      }
      return refused(`${at} cannot be read (${describe(e)})`, fileDir)
    }
    if (!stats.isDirectory()) return refused(`${at} is not a directory`, fileDir)
    try {
      accessSync(at, constants.W_OK | constants.X_OK)
    } catch (e) {
      const code = (e as { code?: string }).code
      // As root only what no mode grants refuses (a read-only file system); the modes are read below.
      if (euid !== 0 || (code !== 'EACCES' && code !== 'EPERM')) {
        return refused(`${at} may not be written by this process (${code ?? describe(e)})`, fileDir)
      }
    }
    const where = at === path ? '' : `made in ${at} at the first mail`
    return euid === 0 ? asRoot(path, at, where, stats) : written(path, where)
  }
}

const written = (path: string, ...notes: string[]): Findings => {
  const said = notes.filter((n) => n !== '').join('; ')
  return {
    problems: [],
    checks: [`MAIL_FILE_DIR: ${path} can be written${said ? ` (${said})` : ''}`],
  }
}

// The image's user (Dockerfile's USER), as serve runs in it.
const IMAGE_UID = 10001

/**
 * Run as root, access() says yes to any mode: a "can be written" would hold for root alone. Says
 * who besides root the modes let write into `at`, and warns when no one does.
 */
function asRoot(path: string, at: string, where: string, s: Stats): Findings {
  const mode = `mode 0${(s.mode & 0o777).toString(8)}`
  // Making a file in a directory takes its write and search (x) bits both, as access() asks.
  const may = (bits: number) => (s.mode & bits) === bits
  if (may(0o003)) return written(path, where, `any user may write into it: ${mode}`)
  const who = [
    ...(s.uid !== 0 && may(0o300) ? [`uid ${s.uid} (its owner)`] : []),
    ...(may(0o030) ? [`group ${s.gid}`] : []),
  ]
  if (who.length === 0) {
    return {
      problems: [],
      checks: [
        `warning: MAIL_FILE_DIR: only root may write into ${at} (owner uid ${s.uid}, group ${s.gid}, ${mode}); check-config runs as root, which may: a serve run as another user (the image's uid ${IMAGE_UID}) fails every row (file_write_failed)`,
      ],
    }
  }
  const made = where ? ` (${where})` : ''
  return {
    problems: [],
    checks: [
      `MAIL_FILE_DIR: ${path} can be written by root, as check-config runs${made}; not checked for the user serve runs as: ${who.join(', ')} may write into ${at} (${mode})`,
    ],
  }
}

const refused = (why: string, fileDir: string): Findings => ({
  problems: [`MAIL_FILE_DIR: ${why}, so the file transport cannot write ${fileDir}`],
  checks: [],
})
