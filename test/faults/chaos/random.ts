// The chaos soak's random source: a small seedable generator and a weighted pick from it.

/** mulberry32: small, seedable, good enough to pick faults. */
export function prng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32
  }
}

/** Picks a key of `weights` with probability proportional to its weight. */
export function pick<K extends string>(r: () => number, weights: Record<K, number>): K {
  const entries = Object.entries(weights) as [K, number][]
  let x = r() * entries.reduce((s, [, w]) => s + w, 0)
  for (const [k, w] of entries) {
    x -= w
    if (x < 0) return k
  }
  return entries[entries.length - 1]![0]
}
