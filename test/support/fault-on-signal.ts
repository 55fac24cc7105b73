// Preloaded into a child `serve` by a test: SIGUSR2 raises an error nothing catches, as a bug would (FAULT=rejection: a promise rejected and never handled; else an exception thrown).
process.on('SIGUSR2', () => {
  if (process.env.FAULT === 'rejection') void Promise.reject(new Error('injected rejection'))
  else
    setImmediate(() => {
      throw new Error('injected exception')
    })
})
