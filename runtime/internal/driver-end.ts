/** @module What becomes of a driver's work once the driver is gone: shared by the head (a driver that died) and the node agent (a job's driver it ended). */
import { killActor } from './actor-lifecycle';
import { cancelOwnedTasks, type JobContext } from './owned-tasks';

/**
 * Ends what a gone driver owned, as Ray does when a driver exits: its actors die (detached ones live on), its tasks and
 * its actors' tasks are cancelled, its placement groups removed, and its objects are freed. Call it only once the driver's process is gone.
 */
export async function releaseDriver(ctx: JobContext, driverId: string, why: string): Promise<{ removed: number; cancelled: number; freed: number }> {
  for (const actorId of await ctx.redis.smembers(ctx.keys.ownedActors(driverId))) {
    await killActor(ctx.redis, ctx.keys, actorId, true, why);
    await cancelOwnedTasks(ctx, actorId);
  }
  const tasks = await cancelOwnedTasks(ctx, driverId);
  // Its placement groups go too: the head's placement releases their bundles once told.
  const groups = (await ctx.redis.hvals(ctx.keys.placementGroups)).map((s) => JSON.parse(s) as { id: string; owner: string }).filter((g) => g.owner === driverId);
  if (groups.length) {
    await ctx.redis.sadd(ctx.keys.removedPlacementGroups, ...groups.map((g) => g.id));
    await ctx.redis.publish(ctx.keys.placementChannel, 'removed');
  }
  const freed = await ctx.redis.nodusFreeProc(ctx.keys.prefix, driverId, '1');
  await ctx.redis.multi().zrem(ctx.keys.driverHeartbeats, driverId).hdel(ctx.keys.drivers, driverId).exec();
  return { ...tasks, freed };
}
