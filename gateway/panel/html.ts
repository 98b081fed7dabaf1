/**
 * @module HTML for the panel: a tagged template that escapes every value put in it, and the two sanitizers for what a
 * service writes as markup (Markdown through marked, then sanitize-html; HTML through sanitize-html).
 */
import type SanitizeHtml from 'sanitize-html';
import type { marked as Marked } from 'marked';

/** Markup that is safe to put in a page as is: made by {@link html}, or by a sanitizer. */
export class SafeHtml {
  constructor(readonly value: string) {}
  toString(): string {
    return this.value;
  }
}

const ENTITIES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Escapes text for an element's content or a quoted attribute value. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ENTITIES[c]);
}

function fragment(v: unknown): string {
  if (v instanceof SafeHtml) return v.value;
  if (Array.isArray(v)) return v.map(fragment).join('');
  if (v === undefined || v === null || v === false) return '';
  return escapeHtml(String(v));
}

/**
 * A piece of HTML in which every interpolated value is escaped, unless it is SafeHtml (another `html` piece, a
 * sanitizer's output); arrays are joined; undefined, null and false render nothing. Attribute values must be quoted.
 *
 * @example
 * html`<p title="${user}">${label}</p>`; // user and label escaped
 */
export function html(strings: TemplateStringsArray, ...values: unknown[]): SafeHtml {
  let out = strings[0];
  for (let i = 0; i < values.length; i++) out += fragment(values[i]) + strings[i + 1];
  return new SafeHtml(out);
}

/*
 * marked 18 and sanitize-html's parser (htmlparser2 12) are ES modules, which Node >= 20.19 require()s but jest (before
 * Node 24.9) does not: they are loaded on first use, so a gateway a test starts in-process loads them only if it
 * renders a page (the browser tests run the gateway as a process).
 */
let markdownParser: typeof Marked | undefined;
let sanitizer: ((text: string) => string) | undefined;

function sanitize(text: string): string {
  if (!sanitizer) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const lib = require('sanitize-html') as typeof SanitizeHtml;
    /** What a service's markup may contain: text structure, tables, links and images; no scripts, styles, forms or frames. */
    const options: SanitizeHtml.IOptions = {
      allowedTags: [...lib.defaults.allowedTags, 'img', 'del', 'details', 'summary'],
      allowedAttributes: {
        a: ['href', 'title'],
        img: ['src', 'alt', 'title', 'width', 'height'],
        th: ['align', 'colspan', 'rowspan'],
        td: ['align', 'colspan', 'rowspan'],
        ol: ['start'],
        code: ['class'],
      },
      allowedClasses: { code: [/^language-[\w-]+$/] },
      allowedSchemes: ['http', 'https', 'mailto'],
      allowedSchemesByTag: { img: ['http', 'https', 'data'] },
      allowProtocolRelative: false,
      // A link leaves the panel without handing it the panel's window.
      transformTags: { a: lib.simpleTransform('a', { rel: 'noopener noreferrer' }) },
    };
    sanitizer = (t) => lib(t, options);
  }
  return sanitizer(text);
}

/** A service's HTML with everything that could run or restyle the page removed. */
export function sanitizeMarkup(text: string): SafeHtml {
  return new SafeHtml(sanitize(text));
}

/** A service's Markdown rendered with marked (GitHub flavour), then sanitized: Markdown may carry raw HTML. */
export function renderMarkdown(text: string): SafeHtml {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  markdownParser ??= (require('marked') as { marked: typeof Marked }).marked;
  return sanitizeMarkup(markdownParser.parse(text, { async: false, gfm: true }));
}
