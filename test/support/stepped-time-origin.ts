// A preload (BUN_OPTIONS=--preload) that sets a process's performance.timeOrigin TIME_ORIGIN_STEP_MS on: as if the wall clock stepped before it started.
const step = Number(process.env.TIME_ORIGIN_STEP_MS ?? 0)
// performance.now() counts on from the process's start as before: only the epoch it is read against moves.
Object.defineProperty(performance, 'timeOrigin', { value: performance.timeOrigin + step })
