/** @module Model folders in the Hugging Face layout: where a model id points and the JSON files that describe it. */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { ConfigError } from '../../runtime/errors';

/** A JSON object as read from a model folder (config.json and friends); fields are the exporter's, unchecked. */
export type JsonObject = Record<string, unknown>;

/** The JSON files of a model folder, read and parsed. */
export interface ModelFolder {
  /** Absolute path of the folder. */
  dir: string;
  /** config.json: the architecture (model_type, text_config, vision_config, token ids). */
  config: JsonObject;
  /** generation_config.json, or {} when the folder has none. */
  generationConfig: JsonObject;
  /** preprocessor_config.json (image size, mean and std, rescale), or {} when the folder has none. */
  preprocessorConfig: JsonObject;
  /** tokenizer_config.json: special tokens and the chat template. */
  tokenizerConfig: JsonObject;
}

/**
 * The folder that holds named models: `NODUS_MODEL_DIR`, else `.nodus/models` under the working folder.
 *
 * @example
 * modelsRoot(); // '/home/me/project/.nodus/models'
 */
export function modelsRoot(): string {
  return resolve(process.env.NODUS_MODEL_DIR || join('.nodus', 'models'));
}

/**
 * Turns a model id into its folder: a path (absolute, or relative to the working folder) to a folder with a
 * config.json, else a name under {@link modelsRoot}. Throws a ConfigError that lists the models there otherwise.
 *
 * @example
 * resolveModelDir('tiny-vlm');              // '<cwd>/.nodus/models/tiny-vlm'
 * resolveModelDir('/models/llava-1.5-7b');  // as given
 */
export function resolveModelDir(modelId: string): string {
  if (!modelId) throw new ConfigError('a model id is required: a folder path or a model name under NODUS_MODEL_DIR');
  const asPath = resolve(modelId);
  if (isModelDir(asPath)) return asPath;
  const root = modelsRoot();
  if (!isAbsolute(modelId)) {
    const named = join(root, modelId);
    if (isModelDir(named)) return named;
  }
  const found = existsSync(root) ? readdirSync(root).filter((name) => isModelDir(join(root, name))).sort() : [];
  throw new ConfigError(
    `unknown model '${modelId}': no folder with a config.json at ${asPath}` +
      (isAbsolute(modelId) ? '' : ` nor at ${join(root, modelId)}`) +
      `. Models in ${root} (NODUS_MODEL_DIR): ${found.length ? found.join(', ') : 'none'}. ` +
      'Run `npm run models` to make the tiny test model (tiny-vlm), or give the path of a folder in the Hugging Face ONNX layout.',
  );
}

function isModelDir(dir: string): boolean {
  return existsSync(join(dir, 'config.json')) && statSync(dir).isDirectory();
}

function readJson(dir: string, file: string, required: boolean): JsonObject {
  const full = join(dir, file);
  if (!existsSync(full)) {
    if (!required) return {};
    throw new ConfigError(`the model folder ${dir} has no ${file}; a folder in the Hugging Face layout needs it (re-export the model, or run \`npm run models\` for the tiny one)`);
  }
  let value: unknown;
  try {
    value = JSON.parse(readFileSync(full, 'utf8'));
  } catch (err) {
    throw new ConfigError(`${full} is not valid JSON (${(err as Error).message}); fix or re-export the file`, { cause: err });
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ConfigError(`${full} must hold a JSON object`);
  return value as JsonObject;
}

/**
 * Resolves a model id and reads its JSON files. config.json and tokenizer_config.json are required; the
 * generation and preprocessor configs are optional ({} when absent).
 *
 * @example
 * const { dir, config } = readModelFolder('tiny-vlm');
 * config.model_type; // 'llava'
 */
export function readModelFolder(modelId: string): ModelFolder {
  const dir = resolveModelDir(modelId);
  return {
    dir,
    config: readJson(dir, 'config.json', true),
    generationConfig: readJson(dir, 'generation_config.json', false),
    preprocessorConfig: readJson(dir, 'preprocessor_config.json', false),
    tokenizerConfig: readJson(dir, 'tokenizer_config.json', true),
  };
}
