/** @module `npm run models [folder]`: writes the tiny test model into NODUS_MODEL_DIR (default .nodus/models), or into the folder given, and says what it wrote. */
import { join, resolve } from 'node:path';
import { modelsRoot } from '../serving/models/folder';
import { makeTinyVlm } from './models/tiny';

const target = process.argv[2] ? resolve(process.argv[2]) : join(modelsRoot(), 'tiny-vlm');
const started = Date.now();
const { dir, files } = makeTinyVlm(target);
console.log(`Wrote tiny-vlm (llava: vision encoder, token embeddings, 2-layer llama decoder with a KV cache; random weights, so its text is gibberish) in ${Date.now() - started} ms to ${dir}:`);
for (const f of files) console.log(`  ${f.path.padEnd(32)} ${f.bytes.toLocaleString('en-US').padStart(9)} bytes`);
console.log(`Load it by name: CausalLM.load('tiny-vlm'), or by path: CausalLM.load('${dir}').`);
