/**
 * @module Model-serving apps over HTTP: register (with progress), invoke (JSON, or NDJSON for a streaming app), list,
 * unregister, unit tasks invoked directly, scaling. The serving layer (it brings onnxruntime) is loaded on first use.
 */
import { Injectable } from '@nestjs/common';
import { ConfigError, ObjectRef } from '../../runtime';
import type { UnitKind } from '../../runtime/protocol/serving';

type Serving = typeof import('../../serving/index.js');

/** A unit task named in a request: `{ kind: 'encoder' | 'llm', modelId, ...its options }`. */
export interface UnitTaskSpec {
  kind: UnitKind;
  modelId: string;
  [option: string]: unknown;
}

/** Refs leave the cluster as their ids (`{ ref: id }`): the bytes stay in the object store. */
export function toWire(v: unknown): unknown {
  if (v instanceof ObjectRef) return { ref: v.id };
  if (Array.isArray(v)) return v.map(toWire);
  if (v && typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, toWire(x)]));
  return v;
}

@Injectable()
export class AppsService {
  private serving: Promise<Serving> | undefined;
  private readonly units = new Map<string, unknown>();

  load(): Promise<Serving> {
    this.serving ??= import('../../serving/index.js');
    return this.serving;
  }

  async register(source: string, alias: string | undefined, progress: (m: string) => void) {
    return (await this.load()).registerApp(source, { alias, progress });
  }

  async unregister(id: string, progress: (m: string) => void = () => undefined) {
    return (await this.load()).unregisterApp(id, progress);
  }

  async list() {
    return (await this.load()).listApps();
  }

  async invoke(id: string, request: unknown) {
    return toWire(await (await this.load()).invokeApp(id, request));
  }

  async *stream(id: string, request: unknown): AsyncGenerator<unknown> {
    for await (const item of (await this.load()).streamApp(id, request)) yield toWire(item);
  }

  async isStreaming(id: string): Promise<boolean> {
    const { findApp } = await import('../../serving/apps.js');
    return (await findApp(id)).streaming;
  }

  /** One unit task object per spec (its deployment is shared by equal specs anyway). */
  async unit(spec: UnitTaskSpec) {
    const { EncoderTask, LLMTask, Modality } = await this.load();
    if (!spec || typeof spec !== 'object' || typeof spec.modelId !== 'string') throw new ConfigError('task must be { kind: "encoder" | "llm", modelId, ...options }.');
    const key = JSON.stringify(spec);
    let task = this.units.get(key);
    if (!task) {
      const { kind, ...o } = spec;
      if (kind === 'encoder') task = new EncoderTask({ modality: Modality.IMAGE, ...(o as { modelId: string }) });
      else if (kind === 'llm') task = new LLMTask(o as { modelId: string });
      else throw new ConfigError(`task.kind must be 'encoder' or 'llm', got ${JSON.stringify(kind)}.`);
      this.units.set(key, task);
    }
    return task as InstanceType<Serving['EncoderTask']> | InstanceType<Serving['LLMTask']>;
  }

  /** Invokes a unit task directly (Cornserve's /tasks/invoke): its input validated by its schema. */
  async invokeTask(spec: UnitTaskSpec, input: unknown) {
    const task = await this.unit(spec);
    return toWire(await task.call(input as never));
  }

  async scale(key: string, replicas: number) {
    return (await this.load()).scaleDeployment(key, replicas);
  }

  async tasks() {
    return (await this.load()).listDeployments();
  }
}
