/** @module chat_stream: tokens as they are generated (serve is an async generator; invoke answers NDJSON). */
import { LLMTask } from 'nodus/serving';

export const config = { tasks: { llm: new LLMTask({ modelId: process.env.CHAT_MODEL ?? 'tiny-vlm' }) } };

export async function* serve(request: { prompt: string; maxTokens?: number }) {
  for await (const t of config.tasks.llm.stream({ prompt: request.prompt, maxTokens: request.maxTokens ?? 32 })) yield { text: t.text };
}
