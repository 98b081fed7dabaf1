/** @module Registered services for the gateway: registration at start, a retry of the ones that failed, and the registry's verbs. */
import { Injectable, NotFoundException, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import type { Flow, RegisteredSource } from '../../runtime/protocol/services';
import { GatewayContext } from '../common/context';
import { listFlows, listSources, refreshSource, refreshSources, registerSource, unregisterSource, type FlowQuery } from './registry';

/** Sources whose last refresh failed (a service started after the gateway) are tried again this often. */
const RETRY_FAILED_MS = 30_000;

/** The registry (flows/registry.ts) over this gateway's Redis, plus registration at start and retries. */
@Injectable()
export class FlowsService implements OnModuleInit, OnModuleDestroy {
  private retryTimer: NodeJS.Timeout | undefined;

  constructor(private readonly gw: GatewayContext) {}

  async onModuleInit(): Promise<void> {
    const { redis, keys, logger } = this.gw;
    // A service that is down now is kept with its error and tried again, so start order does not matter.
    await Promise.all(
      this.gw.options.register.map(async (url) => {
        const s = await refreshSource(redis, keys, url);
        if (s.error) logger.warn({ url, err: s.error }, `could not register ${url} yet; retrying every ${RETRY_FAILED_MS / 1000} s`);
        else logger.info({ url, flows: s.flows.length }, `registered ${url}`);
      }),
    );
    this.retryTimer = setInterval(() => void this.retryFailed(), RETRY_FAILED_MS).unref();
  }

  onModuleDestroy(): void {
    clearInterval(this.retryTimer);
  }

  private async retryFailed(): Promise<void> {
    try {
      for (const s of await listSources(this.gw.redis, this.gw.keys)) if (s.error) await refreshSource(this.gw.redis, this.gw.keys, s.url);
    } catch {
      // Redis away: next time.
    }
  }

  list(query: FlowQuery): Promise<Flow[]> {
    return listFlows(this.gw.redis, this.gw.keys, query);
  }

  sources(): Promise<RegisteredSource[]> {
    return listSources(this.gw.redis, this.gw.keys);
  }

  register(url: string): Promise<RegisteredSource> {
    return registerSource(this.gw.redis, this.gw.keys, url);
  }

  async unregister(url: string): Promise<{ url: string; removed: true }> {
    if (!(await unregisterSource(this.gw.redis, this.gw.keys, url))) throw new NotFoundException(`${url} is not registered; GET /flow/sources lists what is.`);
    return { url, removed: true };
  }

  refresh(): Promise<RegisteredSource[]> {
    return refreshSources(this.gw.redis, this.gw.keys);
  }
}
