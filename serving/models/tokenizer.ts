/** @module A model folder's tokenizer and chat template (tokenizer.json with @huggingface/tokenizers, the template with @huggingface/jinja), with streaming decode. */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Template } from '@huggingface/jinja';
import { Tokenizer } from '@huggingface/tokenizers';
import { ConfigError } from '../../runtime/errors';
import { readModelFolder, type JsonObject, type ModelFolder } from './folder';

/** One part of a message: text, or the place of an image (its embeddings come from the image encoder). */
export type ContentPart = { type: 'text'; text: string } | { type: 'image' };

/** A chat message as chat templates take it. */
export interface ChatMessage {
  role: 'system' | 'user' | 'assistant' | (string & {});
  content: string | ContentPart[];
}

/**
 * Turns token ids into text as they arrive. Decoding one token alone goes wrong for byte-level BPE (a character
 * split over tokens) and for sentencepiece (a leading space dropped), so each push decodes a short window of
 * recent tokens and returns only what is new and complete.
 *
 * @example
 * const stream = tokenizer.streamDecoder();
 * for (const id of ids) process.stdout.write(stream.push(id));
 * process.stdout.write(stream.flush());
 */
export class StreamDecoder {
  private ids: number[] = [];
  private prefix = 0;
  private read = 0;
  constructor(private readonly tokenizer: ChatTokenizer) {}

  /** Adds one token; returns the text it completes ('' while a character is still partial). */
  push(id: number): string {
    this.ids.push(id);
    const before = this.tokenizer.decode(this.ids.slice(this.prefix, this.read));
    const now = this.tokenizer.decode(this.ids.slice(this.prefix));
    // U+FFFD at the end: the last bytes are the start of a character the next token finishes.
    if (now.length <= before.length || now.endsWith('\uFFFD')) return '';
    this.prefix = this.read;
    this.read = this.ids.length;
    return now.slice(before.length);
  }

  /** The text still held back (an unfinished character at the end), for when no more tokens come. */
  flush(): string {
    const before = this.tokenizer.decode(this.ids.slice(this.prefix, this.read));
    const rest = this.tokenizer.decode(this.ids.slice(this.prefix)).slice(before.length);
    this.prefix = this.read = this.ids.length;
    return rest;
  }
}

function tokenText(value: unknown): string | undefined {
  // tokenizer_config.json writes special tokens as strings or as AddedToken objects ({ content, ... }).
  if (typeof value === 'string') return value;
  if (value && typeof value === 'object' && typeof (value as { content?: unknown }).content === 'string') return (value as { content: string }).content;
  return undefined;
}

function ids(value: unknown): number[] {
  if (typeof value === 'number') return [value];
  if (Array.isArray(value)) return value.filter((v): v is number => typeof v === 'number');
  return [];
}

/**
 * The tokenizer of a model folder, with its chat template and the special token ids a decode loop needs.
 *
 * @example
 * const tok = ChatTokenizer.load('tiny-vlm');
 * const text = tok.applyChatTemplate([{ role: 'user', content: [{ type: 'image' }, { type: 'text', text: 'What is it?' }] }], { addGenerationPrompt: true });
 * const ids = tok.encode(text, { addSpecialTokens: false }); // the <image> token repeated imageTokensPerImage times
 */
export class ChatTokenizer {
  /** Ids that end generation (generation_config's eos_token_id, which may list several). */
  readonly eosTokenIds: number[];
  readonly bosTokenId: number | undefined;
  readonly padTokenId: number | undefined;
  /** The token that marks an image's place in the prompt (llava's `<image>`), if the model takes images. */
  readonly imageToken: string | undefined;
  readonly imageTokenId: number | undefined;
  /** How many positions (and image-encoder rows) one image takes: the image token is repeated this many times. */
  readonly imageTokensPerImage: number;
  private readonly tokenizer: Tokenizer;
  private readonly template: Template | undefined;
  private readonly templateTokens: Record<string, string> = {};

  constructor(folder: ModelFolder) {
    const { dir, config, generationConfig, tokenizerConfig } = folder;
    const file = join(dir, 'tokenizer.json');
    if (!existsSync(file)) throw new ConfigError(`the model folder ${dir} has no tokenizer.json; export the fast tokenizer with the model (tokenizer.save_pretrained)`);
    try {
      this.tokenizer = new Tokenizer(JSON.parse(readFileSync(file, 'utf8')), tokenizerConfig);
    } catch (err) {
      throw new ConfigError(`${file} could not be loaded: ${(err as Error).message}`, { cause: err });
    }
    for (const [key, value] of Object.entries(tokenizerConfig)) {
      const text = key.endsWith('_token') ? tokenText(value) : undefined;
      if (text !== undefined) this.templateTokens[key] = text;
    }
    const textConfig = (config.text_config ?? {}) as JsonObject;
    const idOf = (key: string) => (this.templateTokens[key] === undefined ? undefined : this.tokenizer.token_to_id(this.templateTokens[key]));
    const eos = [generationConfig.eos_token_id, config.eos_token_id, textConfig.eos_token_id].map(ids).find((list) => list.length > 0);
    this.eosTokenIds = eos ?? ids(idOf('eos_token'));
    this.bosTokenId = ids(generationConfig.bos_token_id ?? config.bos_token_id)[0] ?? idOf('bos_token');
    this.padTokenId = ids(generationConfig.pad_token_id ?? config.pad_token_id)[0] ?? idOf('pad_token');
    this.imageTokenId = ids(config.image_token_index ?? config.image_token_id)[0] ?? idOf('image_token');
    this.imageToken = this.imageTokenId === undefined ? undefined : this.tokenizer.id_to_token(this.imageTokenId);
    const vision = (config.vision_config ?? {}) as JsonObject;
    const perSide = Number(vision.image_size) / Number(vision.patch_size);
    this.imageTokensPerImage = typeof config.image_seq_length === 'number' ? config.image_seq_length : Number.isInteger(perSide) ? perSide * perSide : 1;

    let source = tokenizerConfig.chat_template;
    // Several named templates: the default one, as transformers picks it.
    if (Array.isArray(source)) source = (source as { name: string; template: string }[]).find((t) => t.name === 'default')?.template;
    if (typeof source !== 'string' && existsSync(join(dir, 'chat_template.jinja'))) source = readFileSync(join(dir, 'chat_template.jinja'), 'utf8');
    this.template = typeof source === 'string' ? new Template(source) : undefined;
  }

  /** Loads the tokenizer of a model id (see resolveModelDir) or of a folder already read. */
  static load(model: string | ModelFolder): ChatTokenizer {
    return new ChatTokenizer(typeof model === 'string' ? readModelFolder(model) : model);
  }

  /**
   * Token ids of `text`. Special tokens written in the text (`<image>`, `</s>`) become their ids; each image token
   * is repeated {@link imageTokensPerImage} times, one position per image-encoder row, as llava's processor does.
   * `addSpecialTokens` adds what the tokenizer adds to a plain prompt (llama: `<s>` first); text from a chat
   * template already has them, so encode it with `false`.
   */
  encode(text: string, { addSpecialTokens = true }: { addSpecialTokens?: boolean } = {}): number[] {
    const out = this.tokenizer.encode(text, { add_special_tokens: addSpecialTokens }).ids;
    if (this.imageTokenId === undefined || this.imageTokensPerImage === 1 || !out.includes(this.imageTokenId)) return out;
    return out.flatMap((id: number) => (id === this.imageTokenId ? new Array<number>(this.imageTokensPerImage).fill(id) : [id]));
  }

  /** Text of `ids`; special tokens (image, end of sequence) are left out unless `skipSpecialTokens` is false. */
  decode(ids: readonly number[], { skipSpecialTokens = true }: { skipSpecialTokens?: boolean } = {}): string {
    return ids.length === 0 ? '' : this.tokenizer.decode(ids as number[], { skip_special_tokens: skipSpecialTokens });
  }

  /** A decoder for one stream of generated tokens. */
  streamDecoder(): StreamDecoder {
    return new StreamDecoder(this);
  }

  /** The id of a token's text, or undefined when it is not in the vocabulary. */
  tokenId(token: string): number | undefined {
    return this.tokenizer.token_to_id(token);
  }

  /**
   * Renders messages with the model's chat template (as transformers does: the special tokens are template
   * variables). `addGenerationPrompt` ends the text where the assistant's answer begins.
   *
   * @example
   * tok.applyChatTemplate([{ role: 'user', content: 'Hi' }], { addGenerationPrompt: true }); // '<s>USER: Hi\nASSISTANT:'
   */
  applyChatTemplate(messages: ChatMessage[], { addGenerationPrompt = false }: { addGenerationPrompt?: boolean } = {}): string {
    if (!this.template) throw new ConfigError('this model has no chat template (tokenizer_config.json chat_template, or chat_template.jinja); pass a prompt string instead of messages');
    return this.template.render({ ...this.templateTokens, messages, add_generation_prompt: addGenerationPrompt });
  }
}
