/** @module One pass at a time: calls made while a pass runs become one more pass after it. */

/**
 * Returns a function that starts `pass` unless one is running; calls made meanwhile make it run once more
 * when it ends (however many there were). A failed pass goes to `onError`; nothing is awaited by the caller.
 */
export function coalescing(pass: () => Promise<void>, onError: (err: unknown) => void): () => void {
  let running = false;
  let again = false;
  const kick = (): void => {
    if (running) {
      again = true;
      return;
    }
    running = true;
    void pass()
      .catch(onError)
      .finally(() => {
        running = false;
        if (again) {
          again = false;
          kick();
        }
      });
  };
  return kick;
}
