// Preloaded into a child command by a test: its first write to stdout throws, as a synchronous write to a pipe its reader closed does (EPIPE); later writes go through, so a line written after it is seen.
const write = process.stdout.write.bind(process.stdout)
let failed = false
process.stdout.write = ((...args: Parameters<typeof write>) => {
  if (failed) return write(...args)
  failed = true
  throw Object.assign(new Error('write EPIPE'), { code: 'EPIPE', syscall: 'write' })
}) as typeof process.stdout.write
