/**
 * @module The panel's static files: its own stylesheet and scripts (gateway/panel/assets) and the browser builds of
 * marked and DOMPurify from node_modules. Served by name from a fixed list, never by a path taken from the request.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

/** One file as served. */
export interface Asset {
  body: Buffer;
  type: string;
  /** Short content hash: the `?v=` of its URL, so that a changed file is never taken from a stale cache. */
  hash: string;
}

/**
 * The folder of the panel's own files. tsc compiles only TypeScript, so the gateway run from dist/ reads them from the
 * package's gateway/panel/assets (shipped: "files" lists gateway).
 */
function ownDir(): string {
  const candidates = [join(__dirname, 'assets'), join(__dirname, '..', '..', '..', 'gateway', 'panel', 'assets')];
  const found = candidates.find((d) => existsSync(join(d, 'panel.css')));
  if (!found) throw new Error(`The panel's assets are missing (looked in ${candidates.join(', ')}); reinstall the package.`);
  return found;
}


const TYPES: Record<string, string> = { css: 'text/css; charset=utf-8', js: 'text/javascript; charset=utf-8', svg: 'image/svg+xml' };

/** Name → where the file is. */
function sources(): Record<string, string> {
  const own = ownDir();
  const mine = ['panel.css', 'panel.js', 'flows.js', 'status.js', 'timeline.js', 'cluster.js', 'favicon.svg'];
  return {
    ...Object.fromEntries(mine.map((n) => [n, join(own, n)])),
    'marked.js': join(dirname(require.resolve('marked/package.json')), 'lib', 'marked.umd.js'),
    // dompurify exports no package.json; its main file sits beside the browser build.
    'purify.js': join(dirname(require.resolve('dompurify')), 'purify.min.js'),
  };
}

let cache: Map<string, Asset> | undefined;

/** Every asset, read once (they are small; a gateway serves them from memory). */
export function assets(): Map<string, Asset> {
  if (cache) return cache;
  const map = new Map<string, Asset>();
  for (const [name, file] of Object.entries(sources())) {
    let body = readFileSync(file);
    // The vendor builds point at source maps that are not served; the browser would ask for them in vain.
    if (name === 'marked.js' || name === 'purify.js') body = Buffer.from(body.toString('utf8').replace(/\n\/\/# sourceMappingURL=\S+\s*$/, '\n'));
    map.set(name, { body, type: TYPES[name.split('.').pop()!], hash: createHash('sha256').update(body).digest('hex').slice(0, 10) });
  }
  cache = map;
  return map;
}

/** The URL of an asset, with its content hash. */
export function assetUrl(name: string): string {
  const a = assets().get(name);
  if (!a) throw new Error(`No panel asset ${name}`);
  return `/panel/assets/${name}?v=${a.hash}`;
}
