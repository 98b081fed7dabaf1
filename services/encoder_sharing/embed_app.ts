/** @module encoder_sharing, first app: image embeddings only (their shape), on the same encoder deployment as the second app. */
import { z } from 'zod';
import { get } from 'nodus';
import { EncoderTask, Modality, Task } from 'nodus/serving';

const In = z.object({ imageUrls: z.array(z.string()).min(1) });
const Out = z.object({ shapes: z.array(z.array(z.number())) });

class EmbedTask extends Task<typeof In, typeof Out> {
  encoder!: EncoderTask;
  constructor() {
    super(In, Out);
  }
  postInit() {
    this.encoder = new EncoderTask({ modelId: 'tiny-vlm', modality: Modality.IMAGE });
  }
  async invoke(input: z.infer<typeof In>) {
    const { embeddings } = await this.encoder.invoke({ dataUrls: input.imageUrls });
    // Only their shapes come back here; get() of a ref reads its object, so keep that for small things.
    const values = (await get(embeddings)) as { dims: number[] }[];
    return { shapes: values.map((v) => v.dims) };
  }
}

export const config = { tasks: { embed: new EmbedTask() } };

export async function serve(request: { imageUrls: string[] }) {
  return config.tasks.embed.call(request);
}
