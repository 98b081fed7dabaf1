/** @module encoder_sharing, second app: image chat whose encoder is the one the first app deployed (equal unit tasks share). */
import { ImageChatTask } from '../image_chat/task';

export const config = { tasks: { imageChat: new ImageChatTask('tiny-vlm') } };

export async function serve(request: { prompt: string; imageUrl: string }) {
  return config.tasks.imageChat.call(request);
}
