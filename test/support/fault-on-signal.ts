// Preloaded into a child `serve`, `migrate` or `status` by a test: a signal (SIGUSR2, or FAULT_ON's) raises an error nothing catches, as a bug would (FAULT=rejection: a promise rejected and never handled; else an exception thrown).
// FAULT_ON=SIGTERM raises it while the stop SIGTERM begins is under way (this listener runs beside serve's).
process.on((process.env.FAULT_ON ?? 'SIGUSR2') as NodeJS.Signals, () => {
  if (process.env.FAULT === 'rejection') void Promise.reject(new Error('injected rejection'))
  else
    setImmediate(() => {
      throw new Error('injected exception')
    })
})
