/** @module The object store on Redis: values tagged by kind, chunked when large, freed by reference counts. */
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { ObjectStoreFullError, fromFailure, type SerializedFailure } from '../errors';
import { DEFAULT_CHUNK_BYTES, Keys, Note, ValueTag } from '../protocol';
import type { ObjectCommands } from '../protocol/commands';
import { fromFramedBuffer, readRecordBytes, type LocalStore } from './local-store';
import { decode, encode } from './serialization';

/** A new object id: 16 random bytes, base64url (22 characters). */
export function newId(): string {
  return randomBytes(16).toString('base64url');
}

export function chunkBytes(): number {
  const env = Number(process.env.NODUS_CHUNK_BYTES);
  return Number.isInteger(env) && env > 0 ? env : DEFAULT_CHUNK_BYTES;
}

const TAG = [Buffer.from([ValueTag.Value]), Buffer.from([ValueTag.Chunked]), Buffer.from([ValueTag.Error])];

/** A stored value: what to SET under the object's key, plus chunks to write first when it is large. */
export interface StoredForm {
  head: Buffer;
  chunks: Buffer[];
}

/** Splits encoded bytes into the stored form: one tagged string, or a header and chunks. */
export function toStoredForm(bytes: Buffer, limit = chunkBytes()): StoredForm {
  if (bytes.length <= limit) return { head: Buffer.concat([TAG[ValueTag.Value], bytes]), chunks: [] };
  const chunks: Buffer[] = [];
  for (let off = 0; off < bytes.length; off += limit) chunks.push(bytes.subarray(off, Math.min(off + limit, bytes.length)));
  return { head: Buffer.concat([TAG[ValueTag.Chunked], encode({ n: chunks.length, len: bytes.length }).bytes]), chunks };
}

export function failureBytes(f: SerializedFailure): Buffer {
  return Buffer.concat([TAG[ValueTag.Error], encode(f).bytes]);
}

/** Writes chunks of a large value (before its header is set by a Lua command). */
export async function writeChunks(redis: Redis, keys: Keys, id: string, chunks: Buffer[]): Promise<void> {
  if (!chunks.length) return;
  const pipe = redis.pipeline();
  chunks.forEach((c, i) => pipe.set(keys.chunk(id, i), c));
  const res = await pipe.exec();
  for (const [err] of res ?? []) if (err) throw err;
}

/**
 * Reads an object's stored bytes (header joined with its chunks, or a store's files), or null when it is not there.
 * Throws ObjectLostError when its bytes were in a node's store that no longer has them. `store`: this
 * process's node store, whose agent pulls a copy of an object held on another machine.
 */
export async function readStored(redis: Redis, keys: Keys, id: string, store: LocalStore | null = null): Promise<Buffer | null> {
  const head = await redis.getBuffer(keys.value(id));
  if (head?.[0] === ValueTag.Stored) return readRecordBytes(head, id, store);
  if (!head || head[0] !== ValueTag.Chunked) return head;
  const { n, len } = decode<{ n: number; len: number }>(head.subarray(1));
  const pipe = redis.pipeline();
  for (let i = 0; i < n; i++) pipe.getBuffer(keys.chunk(id, i));
  const res = (await pipe.exec()) ?? [];
  const out = Buffer.allocUnsafe(len + 1);
  out[0] = ValueTag.Value;
  let off = 1;
  for (const [err, chunk] of res) {
    if (err) throw err;
    if (!chunk) return null; // freed while we read it
    off += (chunk as Buffer).copy(out, off);
  }
  return out;
}

/** Decodes stored bytes: the value, or throws the error the task failed with. */
export function fromStored(bytes: Buffer): unknown {
  if (bytes[0] === ValueTag.Error) throw fromFailure(decode<SerializedFailure>(bytes.subarray(1)));
  if (bytes[0] === ValueTag.Stored) return fromFramedBuffer(bytes);
  return decode(bytes.subarray(1));
}

/** True when stored bytes hold a failure. */
export function isFailure(bytes: Buffer): boolean {
  return bytes[0] === ValueTag.Error;
}

export type CommandClient = Redis & ObjectCommands;

/**
 * Ends a task or actor call with a stored failure (bytes from failureBytes) and tells its caller, in one
 * script; with a lock key, only while `token` still holds the job's lock. Resolves to -1 when it does not.
 * Runs when Redis is out of memory too, so that no caller waits forever on a full store.
 */
export function settleCall(redis: CommandClient, keys: Keys, id: string, caller: string, bytes: Buffer, lock = '', token = ''): Promise<number> {
  return redis.nodusCompleteReserved(keys.prefix, id, keys.inbox(caller), bytes, encode([Note.Done, id, bytes]).bytes, 0, lock, token, '', 0);
}

/** Redis out of memory becomes ObjectStoreFullError, saying what to free or raise; other errors pass. */
export function storeError(err: unknown, bytes: number): unknown {
  if (!/^OOM command not allowed/.test(String((err as Error)?.message ?? err))) return err;
  return new ObjectStoreFullError(
    `The object store is full: Redis refused ${bytes ? `${bytes.toLocaleString('en-US')} bytes` : 'the write'} (its maxmemory is reached). ` +
      'Free objects by dropping refs you no longer need (and calling shutdown() in drivers you are done with), or raise the limit: redis-cli CONFIG SET maxmemory <bytes>.',
    { cause: err },
  );
}
