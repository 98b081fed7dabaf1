/**
 * @module Unit tasks: an image encoder and an LLM, each served by a deployment of model hosts. Their outputs stay on
 * the cluster: an encoder answers with ObjectRefs to the embeddings, which an LLM host reads straight from the object
 * store, so a composite task (and the app around it) never holds the tensors.
 */
import { z } from 'zod';
import { ActorDiedError, ConfigError, get, getRuntimeContext, type Ref } from '../runtime';
import { isObjectRef } from '../runtime/object-ref';
import type { UnitKind } from '../runtime/protocol/serving';
import { deploymentKey, ensureDeployment, replicaHandles, type HostHandle, type UnitSpec } from './deployments';
import type { EncoderHost } from './hosts/encoder-host';
import type { LLMHost } from './hosts/llm-host';
import type { ActorHandle } from '../runtime';
import { Task } from './task';

/** Input modalities of encoders. */
export const Modality = { IMAGE: 'image' } as const;
export type Modality = (typeof Modality)[keyof typeof Modality];

/** Where a unit task runs and how it scales. */
export interface UnitOptions {
  /** GPUs of each host (a node with that many free runs it; CUDA when available, else the CPU with a warning). @default 0 */
  numGpus?: number;
  /** CPUs each host holds. @default 1 */
  numCpus?: number;
  /** Hosts to start. @default 1 */
  replicas?: number;
  /** Times a call is tried again on another (or the restarted) host when its host died under it. @default 1 */
  maxRetries?: number;
}

const UNIT_BRAND = Symbol.for('nodus.serving.unitTask');

/** True for a unit task made by any copy of this package. */
export function isUnitTask(v: unknown): v is UnitTask<z.ZodType, z.ZodType> {
  return !!v && typeof v === 'object' && (v as Record<symbol, unknown>)[UNIT_BRAND] === true;
}

const refSchema = z.custom<Ref<unknown>>((v) => isObjectRef(v), { message: 'must be an ObjectRef (from an encoder)' });

/**
 * A task served by model hosts. Its deployment is shared with every equal unit task (same kind, config, resources);
 * an app's registration deploys it, and a driver calling it directly deploys it on first use.
 */
export abstract class UnitTask<I extends z.ZodType, O extends z.ZodType> extends Task<I, O> {
  abstract readonly kind: UnitKind;
  /** A brand that holds across copies of this package. */
  readonly [UNIT_BRAND] = true;
  private next = 0;

  constructor(
    input: I,
    output: O,
    protected readonly config: Record<string, unknown>,
    protected readonly options: UnitOptions,
  ) {
    super(input, output);
    for (const [k, v] of Object.entries(options)) {
      if (!['numGpus', 'numCpus', 'replicas', 'maxRetries'].includes(k)) throw new ConfigError(`Unknown unit task option '${k}'. Valid options: numGpus, numCpus, replicas, maxRetries.`);
      if (typeof v !== 'number' || v < 0) throw new ConfigError(`Unit task option ${k} must be a number >= 0, got ${JSON.stringify(v)}.`);
    }
  }

  /** What its deployment is made of. */
  get spec(): UnitSpec {
    return { kind: this.kind, config: this.config, numGpus: this.options.numGpus ?? 0, numCpus: this.options.numCpus ?? 1, replicas: this.options.replicas ?? 1 };
  }

  get deploymentKey(): string {
    return deploymentKey(this.spec);
  }

  /** One of its hosts, round robin; deployed here first when nobody has (a driver calling it directly). */
  protected async host(fresh = false): Promise<HostHandle> {
    let list = await replicaHandles(this.deploymentKey, fresh);
    if (!list.length) {
      await ensureDeployment(this.spec, directHolder());
      list = await replicaHandles(this.deploymentKey, true);
    }
    return list[this.next++ % list.length];
  }

  /** Runs `call` on a host; a host that died under it (it restarts) is tried again, up to maxRetries. */
  protected async onHost<T>(call: (h: HostHandle) => Promise<T>): Promise<T> {
    const retries = this.options.maxRetries ?? 1;
    for (let attempt = 0; ; attempt++) {
      try {
        return await call(await this.host(attempt > 0));
      } catch (err) {
        if (!(err instanceof ActorDiedError) || attempt >= retries) throw err;
      }
    }
  }
}

export const EncoderInput = z.object({ dataUrls: z.array(z.string()).min(1) });
export const EncoderOutput = z.object({ embeddings: z.array(refSchema) });

/**
 * Encodes images into embeddings (Cornserve's Eric). Requests from all callers are batched by the host.
 *
 * @example
 * const enc = new EncoderTask({ modelId: 'tiny-vlm', modality: Modality.IMAGE });
 * const { embeddings } = await enc.invoke({ dataUrls: [url] });   // ObjectRefs; the bytes stay on the cluster
 */
export class EncoderTask extends UnitTask<typeof EncoderInput, typeof EncoderOutput> {
  readonly kind = 'encoder' as const;

  constructor(o: { modelId: string; modality: Modality; maxBatchSize?: number; batchWindowMs?: number; generic?: Record<string, unknown> } & UnitOptions) {
    const { modelId, modality, maxBatchSize, batchWindowMs, generic, ...options } = o;
    if (modality !== Modality.IMAGE) throw new ConfigError(`EncoderTask modality '${String(modality)}' is not served yet; use Modality.IMAGE.`);
    super(EncoderInput, EncoderOutput, dropUndefined({ modelId, modality, maxBatchSize, batchWindowMs, generic }), options);
  }

  async invoke(input: z.output<typeof EncoderInput>): Promise<z.input<typeof EncoderOutput>> {
    const out = await this.onHost((h) => get((h as ActorHandle<EncoderHost>).encode.remote(input.dataUrls)));
    return { embeddings: out.embeddings };
  }
}

export const LLMInput = z.object({
  prompt: z.string().optional(),
  messages: z.array(z.object({ role: z.string(), content: z.union([z.string(), z.array(z.any())]) })).optional(),
  multimodalData: z.array(z.tuple([z.literal('image'), z.string()])).optional(),
  embeddings: z.array(refSchema).optional(),
  maxTokens: z.number().int().positive().optional(),
  temperature: z.number().min(0).optional(),
  topP: z.number().gt(0).max(1).optional(),
  seed: z.number().int().optional(),
  stop: z.array(z.string()).optional(),
  /** Generate exactly maxTokens (benchmarks). */
  ignoreEos: z.boolean().optional(),
});
export const LLMOutput = z.object({ response: z.string(), tokens: z.number().optional(), finishReason: z.string().optional() });

/**
 * Generates text (Cornserve's LLM unit task). Image embeddings (ObjectRefs from an EncoderTask) are placed at the
 * image tokens of the prompt; concurrent requests share decode steps (continuous batching).
 *
 * @example
 * const llm = new LLMTask({ modelId: 'tiny-vlm' });
 * const { response } = await llm.invoke({ prompt: 'Hello', maxTokens: 16 });
 * for await (const t of llm.stream({ prompt: 'Hello' })) process.stdout.write(t.text);
 */
export class LLMTask extends UnitTask<typeof LLMInput, typeof LLMOutput> {
  readonly kind = 'llm' as const;

  constructor(o: { modelId: string; maxBatchSize?: number } & UnitOptions) {
    const { modelId, maxBatchSize, ...options } = o;
    super(LLMInput, LLMOutput, dropUndefined({ modelId, maxBatchSize }), options);
  }

  async invoke(input: z.output<typeof LLMInput>): Promise<z.input<typeof LLMOutput>> {
    return this.onHost((h) => get((h as ActorHandle<LLMHost>).generate.remote(input as never)));
  }

  /** The response token by token, as generated. */
  async *stream(input: z.input<typeof LLMInput>): AsyncGenerator<{ text: string; token: number }> {
    const parsed = LLMInput.parse(input);
    const h = (await this.host()) as ActorHandle<LLMHost>;
    for await (const ref of h.stream.remote(parsed as never)) yield (await get(ref)) as { text: string; token: number };
  }
}

/**
 * Who holds a deployment made because this process called a unit task directly (not through an app):
 * `releaseHolder(directHolder())` lets go of all of them.
 */
export function directHolder(): string {
  const ctx = getRuntimeContext();
  return `driver:${ctx.actorId ?? ctx.processId}`;
}

function dropUndefined(o: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
}
