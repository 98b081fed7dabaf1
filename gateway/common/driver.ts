/** @module The gateway process as a driver of the cluster, shared by every gateway in the process. */
import { init, shutdown } from '../../runtime';
import { currentContext } from '../../runtime/internal/global';

let holders = 0;
/** Resolves to true when the gateway made the process a driver (and so ends it), false when it already was one. */
let owned: Promise<boolean> | undefined;

/**
 * Makes this process a driver of the cluster (init()), so that the gateway can kill runner actors through the public API.
 * Reference-counted: several gateways in one process (tests, an app embedding one) share it, and a process that called
 * init() itself keeps its connection.
 */
export async function acquireDriver(address: string, namespace: string): Promise<void> {
  holders++;
  owned ??= (async () => {
    if (currentContext()) return false;
    await init({ address, namespace, logToDriver: false });
    return true;
  })();
  try {
    await owned;
  } catch (err) {
    holders--;
    owned = undefined;
    throw err;
  }
}

/** Drops one holder; the last one shuts the driver down if the gateway started it. */
export async function releaseDriver(): Promise<void> {
  if (holders === 0 || --holders > 0) return;
  const mine = owned;
  owned = undefined;
  if (await mine?.catch(() => false)) await shutdown().catch(() => undefined);
}
