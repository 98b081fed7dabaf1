/** @module Task event lines and state filters, without Redis: what a reader gets back is what a process recorded. */
import { EventKind, escapeField, parseEvents } from '../../runtime/protocol/state';
import { applyFilters, parseFilter } from '../../runtime/internal/state-reader';

test('an error message with tabs, newlines and backslashes survives an event line', () => {
  const message = 'line one\n\tindented \\ path\r\nend';
  const line = `abc\t${EventKind.Failed}\t123\tnode-1\tworker-1\tRangeError\t${escapeField(message)}`;
  expect(parseEvents(`${line}\nnot an event`)).toEqual([['abc', EventKind.Failed, 123, ['node-1', 'worker-1', 'RangeError', message]]]);
});

test('filters compare as text without regard to case, != excludes, and an unknown field names the valid ones', () => {
  const rows = [
    { taskId: 'a', state: 'RUNNING', name: 'f' },
    { taskId: 'b', state: 'FAILED', name: 'g' },
  ];
  expect(applyFilters('tasks', rows, [parseFilter('state=running')]).map((r) => r.taskId)).toEqual(['a']);
  expect(applyFilters('tasks', rows, [parseFilter('name!=f')]).map((r) => r.taskId)).toEqual(['b']);
  expect(() => applyFilters('tasks', rows, [parseFilter('State=FAILED')])).toThrow("tasks cannot be filtered on 'State'. Did you mean 'state'?");
  expect(() => parseFilter('state')).toThrow('--filter takes field=value or field!=value');
});
