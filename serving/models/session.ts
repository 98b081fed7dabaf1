/** @module ONNX Runtime sessions on the device a model host asked for: CUDA where its libraries are, else the CPU with one warning. */
import * as ort from 'onnxruntime-node';

export type Device = 'cpu' | 'cuda';

export interface OpenedSession {
  session: ort.InferenceSession;
  /** Where it really runs: 'cpu' when CUDA was asked for and is not available here. */
  device: Device;
}

let warnedNoCuda = false;

/**
 * Opens an ONNX model. Asking for 'cuda' without the CUDA provider's libraries throws inside onnxruntime-node; then
 * the model runs on the CPU and the process says so once (with what to install).
 *
 * @example
 * const { session, device } = await openSession('/models/tiny-vlm/onnx/decoder_model_merged.onnx', 'cuda');
 */
export async function openSession(file: string, device: Device = 'cpu', options: ort.InferenceSession.SessionOptions = {}): Promise<OpenedSession> {
  if (device === 'cuda') {
    try {
      return { session: await ort.InferenceSession.create(file, { ...options, executionProviders: ['cuda'] }), device: 'cuda' };
    } catch (err) {
      if (!warnedNoCuda) {
        warnedNoCuda = true;
        console.warn(
          `[nodus] warning: the CUDA provider of onnxruntime-node is not available here (${(err as Error).message.split('\n')[0]}); models run on the CPU. ` +
            'On a machine with CUDA 12: node node_modules/onnxruntime-node/script/install --onnxruntime-node-install=cuda12',
        );
      }
    }
  }
  return { session: await ort.InferenceSession.create(file, { ...options, executionProviders: ['cpu'] }), device: 'cpu' };
}
