/**
 * @module A flow's form (its FormElement list) as HTML: every element kind, labels tied to inputs, the elements' limits
 * as HTML attributes (the service checks them again), posted values kept and each error beside its field.
 */
import type { FormElement, SelectOption } from '../../runtime/protocol/services';
import { CSRF_FIELD } from './csrf';
import { SafeHtml, html, renderMarkdown, sanitizeMarkup } from './html';

/** How a form is drawn: where it posts, its token, and (after a failed POST) what was posted and what was wrong. */
export interface FormView {
  action: string;
  csrf: string;
  /** Where Cancel goes. */
  cancelHref: string;
  /** The posted fields: when given, they replace the elements' defaults (a checkbox absent is unchecked). */
  values?: Record<string, unknown>;
  /** Messages per field name; `_global_` for the form. */
  errors?: Record<string, string[]>;
}

type Input = Exclude<Extract<FormElement, { name: string }>, { type: 'action' }>;
type Button = Extract<FormElement, { type: 'submit' | 'cancel' | 'action' }>;

const CHECKED = new Set<unknown>([true, 'on', 'true', '1', 'yes']);

/** ` name="value"` pairs: strings and numbers escaped, true as a bare attribute, undefined/false/null left out. */
function attrs(list: Record<string, string | number | boolean | undefined | null>): SafeHtml {
  let out = '';
  for (const [k, v] of Object.entries(list)) {
    if (v === undefined || v === null || v === false) continue;
    out += v === true ? ` ${k}` : html` ${new SafeHtml(k)}="${String(v)}"`.value;
  }
  return new SafeHtml(out);
}

function asText(v: unknown): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (Array.isArray(v)) return v.map(String).join(',');
  return String(v);
}

function isButton(el: FormElement): el is Button {
  return el.type === 'submit' || el.type === 'cancel' || el.type === 'action';
}

function button(el: Button, view: FormView): SafeHtml {
  if (el.type === 'submit') return html`<button type="submit" class="button primary">${el.text || 'Submit'}</button>`;
  if (el.type === 'cancel') return html`<a class="button" href="${view.cancelHref}">${el.text || 'Cancel'}</a>`;
  // An action posts its value under its name, with the rest of the form.
  return html`<button type="submit" class="button"${attrs({ name: el.name, value: el.value })}>${el.text}</button>`;
}

function selectedNames(el: Extract<Input, { type: 'select' }>, view: FormView): Set<string> {
  const v = view.values ? view.values[el.name] : el.value;
  const given = v === undefined ? (view.values ? [] : el.options.filter((o) => o.value === true).map((o) => o.name)) : [v].flat();
  return new Set(given.map(String));
}

function option(o: SelectOption, chosen: Set<string>): SafeHtml {
  return html`<option${attrs({ value: o.name, selected: chosen.has(o.name) })}>${o.label || o.name}</option>`;
}

function input(el: Input, index: number, view: FormView): SafeHtml {
  const id = `field-${index}`;
  const errors = view.errors?.[el.name] ?? [];
  const errId = `${id}-error`;
  const hintId = `${id}-hint`;
  const posted = view.values ? view.values[el.name] : undefined;
  const common = {
    id,
    name: el.name,
    required: el.required,
    disabled: el.disabled,
    readonly: el.readonly,
    'aria-invalid': errors.length ? 'true' : undefined,
    'aria-describedby': [errors.length ? errId : '', el.type === 'files' ? hintId : ''].filter(Boolean).join(' ') || undefined,
  };
  const label = el.label || el.name;
  const req = el.required ? html`<span class="required" aria-hidden="true"> *</span>` : '';
  const errorLine = errors.length ? html`<p class="field-error" id="${errId}">${errors.join(' ')}</p>` : '';
  const labelled = (control: SafeHtml, extra = '') =>
    html`<div class="${`field${errors.length ? ' invalid' : ''}${extra}`}"><label for="${id}">${label}${req}</label>${control}${errorLine}</div>`;
  const value = (dflt: unknown) => asText(view.values ? posted : dflt);

  switch (el.type) {
    case 'text':
    case 'password': {
      // A password is never sent back into the page.
      const v = el.type === 'password' ? undefined : value(el.value);
      const a = attrs({ ...common, type: el.type, value: v, placeholder: el.placeholder, maxlength: el.maxLength, minlength: el.minLength, pattern: el.pattern });
      return labelled(html`<input${a}>`);
    }
    case 'textarea': {
      const a = attrs({ ...common, rows: el.rows ?? 4, placeholder: el.placeholder, maxlength: el.maxLength, minlength: el.minLength });
      return labelled(html`<textarea${a}>${value(el.value) ?? ''}</textarea>`);
    }
    case 'number':
      return labelled(html`<input${attrs({ ...common, type: 'number', value: value(el.value), placeholder: el.placeholder, min: el.min, max: el.max, step: el.step ?? 'any' })}>`);
    case 'date':
    case 'time':
    case 'datetime':
      return labelled(html`<input${attrs({ ...common, type: el.type === 'datetime' ? 'datetime-local' : el.type, value: value(el.value), min: el.min, max: el.max })}>`);
    case 'checkbox': {
      const checked = view.values ? CHECKED.has(posted) : el.value === true;
      const box = html`<input${attrs({ ...common, type: 'checkbox', value: 'on', checked })}>`;
      if (el.option && el.label) {
        // Two texts: the label names the group, the option is what the box says.
        return html`<fieldset class="${`field checkbox${errors.length ? ' invalid' : ''}`}"><legend>${el.label}${req}</legend><div class="check">${box}<label for="${id}">${el.option}</label></div>${errorLine}</fieldset>`;
      }
      return html`<div class="${`field checkbox${errors.length ? ' invalid' : ''}`}"><div class="check">${box}<label for="${id}">${el.option || label}${req}</label></div>${errorLine}</div>`;
    }
    case 'select': {
      const chosen = selectedNames(el, view);
      const a = attrs({ ...common, multiple: el.multiple, size: el.multiple ? Math.min(6, Math.max(2, el.options.length)) : undefined });
      return labelled(html`<select${a}>${el.multiple || el.required ? '' : html`<option value="">—</option>`}${el.options.map((o) => option(o, chosen))}</select>`);
    }
    case 'files':
      // ServeAPI does not read multipart bodies yet: say so rather than drop the files silently.
      return labelled(
        html`<input${attrs({ ...common, type: 'file', multiple: el.multiple, accept: el.accept, disabled: true })}><p class="hint" id="${hintId}">File uploads are not supported by the panel yet.</p>`,
      );
    default:
      return html``;
  }
}

/** The messages above a form that did not pass: the form's own, then each field's, linked to it. */
function errorSummary(elements: readonly FormElement[], view: FormView): SafeHtml {
  const errors = view.errors ?? {};
  const global = errors._global_ ?? [];
  const fields = elements.flatMap((el, i) => ('name' in el && el.type !== 'action' && errors[el.name]?.length ? [{ el, i }] : []));
  const named = new Set(fields.map((f) => (f.el as Input).name));
  // Messages for names no element has would otherwise be lost.
  const other = Object.entries(errors).filter(([k]) => k !== '_global_' && !named.has(k));
  if (!global.length && !fields.length && !other.length) return html``;
  return html`<div class="error-summary" role="alert" tabindex="-1" id="form-errors">
<h2>The form needs changes</h2>
<ul>${global.map((m) => html`<li>${m}</li>`)}${other.map(([k, m]) => html`<li>${k}: ${m.join(' ')}</li>`)}${fields.map(
    ({ el, i }) => html`<li><a href="${`#field-${i}`}">${(el as Input).label || (el as Input).name}</a>: ${errors[(el as Input).name].join(' ')}</li>`,
  )}</ul></div>`;
}

/**
 * The whole form: the error summary, then each element in order (consecutive buttons in one row), a hidden CSRF
 * token, and Markdown/HTML elements sanitized.
 */
export function renderForm(elements: readonly FormElement[], view: FormView): SafeHtml {
  const parts: SafeHtml[] = [];
  let buttons: SafeHtml[] = [];
  const flush = () => {
    if (buttons.length) parts.push(html`<div class="actions">${buttons}</div>`);
    buttons = [];
  };
  elements.forEach((el, i) => {
    if (isButton(el)) {
      buttons.push(button(el, view));
      return;
    }
    flush();
    switch (el.type) {
      case 'markdown':
        parts.push(html`<div class="prose">${renderMarkdown(el.text ?? '')}</div>`);
        break;
      case 'html':
        parts.push(html`<div class="prose">${sanitizeMarkup(el.text ?? '')}</div>`);
        break;
      case 'break':
        parts.push(html`<div class="break"></div>`);
        break;
      case 'hr':
        parts.push(html`<hr>`);
        break;
      case 'errors':
        // The form's messages are shown above it; an Errors element may add a hint of its own.
        if (el.text) parts.push(html`<p class="hint">${el.text}</p>`);
        break;
      default:
        if ('name' in el) parts.push(input(el, i, view));
    }
  });
  flush();
  // Submit is implicit in a form without buttons (Enter submits), but a visible one is clearer.
  if (!elements.some((el) => el.type === 'submit' || el.type === 'action')) parts.push(html`<div class="actions"><button type="submit" class="button primary">Submit</button></div>`);
  return html`${errorSummary(elements, view)}<form method="post" class="flow-form" action="${view.action}" accept-charset="utf-8">
<input type="hidden" name="${CSRF_FIELD}" value="${view.csrf}">
${parts}
</form>`;
}
