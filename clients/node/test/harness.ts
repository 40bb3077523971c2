/**
 * The integration tests' Node process: reads one instruction as JSON on stdin, sends the
 * task with the real client, waits for `get()` if asked, and prints one JSON line:
 * `{"id", "result"}` or `{"id"?, "error": {name, message, ...fields}}`.
 *
 *   {"producer": {...ProducerOptions}, "task": "demo.greet", "call": {"args": [], "kwargs": {}},
 *    "options": {...SendOptions}, "get": {"timeoutMs": 20000} | null}
 */
import { createProducer, TaskSchemaError, type ProducerOptions, type SendOptions, type TaskCall } from "../src";

interface Instruction {
  producer: ProducerOptions;
  task: string;
  call: TaskCall;
  options?: SendOptions;
  get?: { timeoutMs?: number; intervalMs?: number } | null;
}

function described(error: unknown): Record<string, unknown> {
  if (!(error instanceof Error)) return { name: typeof error, message: String(error) };
  const fields: Record<string, unknown> = { ...error };
  delete fields["cause"];
  return { name: error.name, message: error.message, isTaskSchemaError: error instanceof TaskSchemaError, ...fields };
}

async function main(): Promise<void> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  const instruction = JSON.parse(Buffer.concat(chunks).toString("utf8")) as Instruction;
  const producer = createProducer(instruction.producer);
  const out: Record<string, unknown> = {};
  try {
    const handle = await producer.send(instruction.task, instruction.call, instruction.options);
    out["id"] = handle.id;
    if (instruction.get) out["result"] = await handle.get(instruction.get);
  } catch (error) {
    out["error"] = described(error);
  } finally {
    await producer.close();
  }
  process.stdout.write(`${JSON.stringify(out)}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`harness failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(2);
});
