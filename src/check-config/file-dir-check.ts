// Whether the file transport can write into MAIL_FILE_DIR: the directory writable, or makeable in its nearest existing parent.
import { accessSync, constants, statSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { describe, type Findings } from './findings.ts'

/**
 * Looks without making anything: MAIL_FILE_DIR itself, or (not there yet, as the transport makes it
 * at the first mail) its nearest existing parent, must be a directory this process may write into.
 * Otherwise every row fails after its attempts (file_write_failed) once serve runs.
 */
export function checkFileDir(fileDir: string): Findings {
  const path = resolve(fileDir)
  let at = path
  for (;;) {
    let isDirectory: boolean
    try {
      isDirectory = statSync(at).isDirectory()
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
    if (!isDirectory) return refused(`${at} is not a directory`, fileDir)
    try {
      accessSync(at, constants.W_OK | constants.X_OK)
    } catch (e) {
      return refused(
        `${at} may not be written by this process (${(e as { code?: string }).code ?? describe(e)})`,
        fileDir,
      )
    }
    const where =
      at === path ? 'can be written' : `can be written (made in ${at} at the first mail)`
    return { problems: [], checks: [`MAIL_FILE_DIR: ${path} ${where}`] }
  }
}

const refused = (why: string, fileDir: string): Findings => ({
  problems: [`MAIL_FILE_DIR: ${why}, so the file transport cannot write ${fileDir}`],
  checks: [],
})
