/** @module image_chat's composite task (Cornserve's ImageChatTask): an image encoder and an LLM, embeddings passed as refs. */
import { z } from 'zod';
import { Task, EncoderTask, LLMTask, Modality } from 'nodus/serving';

export const ImageChatInput = z.object({ prompt: z.string(), imageUrl: z.string() });
export const ImageChatOutput = z.object({ response: z.string() });

export class ImageChatTask extends Task<typeof ImageChatInput, typeof ImageChatOutput> {
  imageEncoder!: EncoderTask;
  llm!: LLMTask;

  constructor(readonly modelId: string) {
    super(ImageChatInput, ImageChatOutput);
  }

  postInit() {
    this.imageEncoder = new EncoderTask({ modelId: this.modelId, modality: Modality.IMAGE });
    this.llm = new LLMTask({ modelId: this.modelId });
  }

  async invoke(input: z.infer<typeof ImageChatInput>) {
    const image = await this.imageEncoder.invoke({ dataUrls: [input.imageUrl] }); // embeddings stay ObjectRefs
    const out = await this.llm.invoke({ prompt: input.prompt, multimodalData: [['image', input.imageUrl]], embeddings: image.embeddings, maxTokens: 32 });
    return { response: out.response };
  }
}
