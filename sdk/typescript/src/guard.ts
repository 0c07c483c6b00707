/** The guard that keeps SDK bugs out of the host app, and the switch tests use to see them. */

export const guard = {
  /** Tests set this so an SDK bug fails the test instead of being swallowed. */
  raiseInternalErrors: false,
};

/** Log an internal error at debug level, or rethrow it when tests asked for that. */
export function swallow(error: unknown, where: string): void {
  if (guard.raiseInternalErrors) throw error;
  if (process.env.MARGINDASH_DEBUG) console.debug(`margindash: internal error in ${where}`, error);
}
