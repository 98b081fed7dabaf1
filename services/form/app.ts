/** @module form: every form element, converted and checked by the form's definitions, and InputsError per field and for the form. */
import { join } from 'node:path';
import { ServeAPI, forms as F, InputsError, Launch } from 'nodus/serve';

export const app = new ServeAPI({ title: 'Form elements' });

export const model = F.Model(
  F.Markdown(`
    # Every form element
    Inputs are converted (numbers, booleans, dates) and checked against their definitions on the server,
    whatever the browser did. *Markdown* and <b>HTML</b> are shown sanitized.`),
  F.HTML('<p>An <em>HTML</em> element.</p>'),
  F.Errors(),
  F.HR(),
  F.InputText({ label: 'Name', name: 'name', placeholder: 'Ada', required: true, maxLength: 40 }),
  F.InputText({ label: 'Code (three capitals)', name: 'code', pattern: '[A-Z]{3}', value: 'ABC' }),
  F.InputPassword({ label: 'Secret', name: 'secret' }),
  F.InputArea({ label: 'Notes', name: 'notes', rows: 3 }),
  F.InputNumber({ label: 'Count (1–10)', name: 'count', value: 3, min: 1, max: 10, step: 1 }),
  F.InputDate({ label: 'Day', name: 'day' }),
  F.InputTime({ label: 'Time', name: 'time' }),
  F.InputDateTime({ label: 'When', name: 'when' }),
  F.Checkbox({ label: 'Agree', name: 'agree', option: 'I agree to the terms' }),
  F.Select({ label: 'Size', name: 'size', value: 'm', options: [F.InputOption({ name: 's', label: 'Small' }), F.InputOption({ name: 'm', label: 'Medium' }), F.InputOption({ name: 'l', label: 'Large' })] }),
  F.Select({ label: 'Toppings', name: 'toppings', multiple: true, options: [F.InputOption({ name: 'cheese' }), F.InputOption({ name: 'olives' })] }),
  F.InputFiles({ label: 'Files', name: 'files', multiple: true }),
  F.Break(),
  F.Submit('Submit'),
  F.Cancel('Cancel'),
  F.Action({ name: 'preset', text: 'Fill a preset', value: 'preset' }),
);

app.enter(
  { path: '/', model, summary: 'Form elements', description: 'Every form element, checked on the server; errors per field and for the whole form.', tags: ['Example'], version: '1.0.0', author: 'nodus' },
  async (request, inputs) => {
    const error = new InputsError();
    if (inputs.name && String(inputs.name).toLowerCase() === 'root') error.add({ name: 'That name is reserved; choose another.' });
    if (inputs.agree !== true) error.add({ agree: 'Please agree to the terms.' });
    if (inputs.size === 's' && Number(inputs.count) > 5) error.add({ _global_: 'A small size holds at most 5: lower the count or choose a larger size.' });
    if (error.hasErrors()) throw error;
    return Launch(request, `${join(__dirname, 'calc')}:execute`, inputs);
  },
);

if (require.main === module) void app.listen({ port: Number(process.env.PORT ?? 8007) });
