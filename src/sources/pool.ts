/**
 * Maps `items` through `fn` with at most `limit` calls running at once; results keep the items' order.
 * After the first failure no new call starts; the calls already running are allowed to settle, then
 * that first error is thrown.
 */
export async function mapPool<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length)
  const workers = Math.min(items.length, Number.isFinite(limit) ? Math.max(1, Math.floor(limit)) : items.length)
  let next = 0
  let failure: {error: unknown} | undefined

  const worker = async (): Promise<void> => {
    while (failure === undefined && next < items.length) {
      const index = next++
      try {
        results[index] = await fn(items[index], index)
      } catch (error) {
        failure ??= {error}
        return
      }
    }
  }

  await Promise.all(Array.from({length: workers}, worker))
  if (failure) throw failure.error
  return results
}
