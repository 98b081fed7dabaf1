/** @module image_chat: the seed's app — a question about an image, answered by the tiny vision-language model. */
import { ImageChatTask } from './task';

export const config = { tasks: { imageChat: new ImageChatTask(process.env.IMAGE_CHAT_MODEL ?? 'tiny-vlm') } };

export async function serve(request: { prompt: string; imageUrl: string }) {
  return { response: (await config.tasks.imageChat.call(request)).response };
}
