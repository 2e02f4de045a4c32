/** What a call throws, as the class a test expects: for tests of refusals. */

/**
 * The error `fn` throws, when it is a `type`; anything else it throws is thrown on, and
 * a call that returns fails with "not refused".
 */
export function thrownBy<T>(type: abstract new (...args: never[]) => T, fn: () => unknown): T {
  try {
    fn();
  } catch (err) {
    if (err instanceof type) return err;
    throw err;
  }
  throw new Error('not refused');
}

/** The same for a promise: the error it rejects with, when it is a `type`. */
export async function rejectedWith<T>(type: abstract new (...args: never[]) => T, p: Promise<unknown>): Promise<T> {
  try {
    await p;
  } catch (err) {
    if (err instanceof type) return err;
    throw err;
  }
  throw new Error('not refused');
}
