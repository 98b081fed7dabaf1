/** @module Helpers for model tests: a whole generation collected into its tokens and text. */
import type { CausalLM, GenerateOptions } from '../../serving/models/llm';

/** Runs `llm.generate` to its end; resolves to every token and the joined text. */
export async function generateAll(llm: CausalLM, input: Parameters<CausalLM['generate']>[0], options: GenerateOptions): Promise<{ tokens: number[]; text: string }> {
  const tokens: number[] = [];
  let text = '';
  for await (const g of llm.generate(input, options)) {
    tokens.push(g.token);
    text += g.text;
  }
  return { tokens, text };
}
