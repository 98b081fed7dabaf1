/** @module The hello world task (the seed's, in TypeScript): two steps, a name in and a message out. */
import { z } from 'zod';
import { task, step } from 'nodus/tasks';

export const Parameters = z.object({ name: z.string().nullable().default(null).describe('The name of the hello world branch') });
export const Results = z.object({ message: z.string().describe('The message to be printed') });

const ADJECTIVES = ['Brave', 'Calm', 'Eager', 'Gentle', 'Happy', 'Jolly', 'Kind', 'Lucky', 'Quiet', 'Witty'];
const NAMES = ['Ada', 'Alan', 'Barbara', 'Donald', 'Edsger', 'Grace', 'Hedy', 'Katherine', 'Linus', 'Margaret'];

/** A random name in capitals, like `Witty Grace` (the seed's generate_name(style="capital")). */
function randomCapitalName(): string {
  const pick = (a: string[]) => a[Math.floor(Math.random() * a.length)];
  return `${pick(ADJECTIVES)} ${pick(NAMES)}`;
}

const getName = step({ name: 'Get Name', description: 'Generate a name' }, (name: string) => {
  const chosen = name || randomCapitalName();
  console.log(`Getting name: ${chosen}`);
  return chosen;
});

const sayHello = step({ name: 'Say Hello', description: 'Print a hello message' }, (name: string) => {
  console.log(`Hello, ${name}!`);
  return `Hello, ${name}!`;
});

/**
 * @example
 * // npx nodus tasks register services/hello_world/task.ts && npx nodus tasks run "Hello World" --param name=Ada --wait
 */
export const helloWorld = task(
  { name: 'Hello World', description: 'A hello world task', parameters: Parameters, results: Results },
  async (parameters) => ({ message: await sayHello(await getName(parameters.name ?? '')) }),
);
