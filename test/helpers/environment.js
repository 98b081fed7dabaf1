/**
 * Jest's node environment puts the outer realm's Uint8Array into each test's context (for Buffer) but
 * leaves the other typed arrays from the context, so a Float64Array made in a test is not a TypedArray
 * by the outer realm's measure and msgpackr packs it as a plain object. A real process has one realm:
 * give tests all typed arrays from the outer realm too.
 */
const { TestEnvironment } = require('jest-environment-node');

const TYPED = [
  'Int8Array', 'Uint8Array', 'Uint8ClampedArray', 'Int16Array', 'Uint16Array', 'Int32Array', 'Uint32Array',
  'Float32Array', 'Float64Array', 'BigInt64Array', 'BigUint64Array', 'ArrayBuffer', 'SharedArrayBuffer', 'DataView',
];

class OneRealmEnvironment extends TestEnvironment {
  constructor(config, context) {
    super(config, context);
    for (const name of TYPED) this.global[name] = globalThis[name];
  }
}

module.exports = OneRealmEnvironment;
