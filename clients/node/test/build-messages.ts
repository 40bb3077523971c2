/**
 * For the property tests: reads `[{task, id, args, kwargs}, ...]` as JSON on stdin and prints
 * the protocol 2 message the producer builds for each (`{headers, properties, body}`, body as
 * text), without any broker.
 */
import { buildTaskMessage, type Json, type JsonObject } from "../src/protocol";

interface Call {
  task: string;
  id: string;
  args: Json[];
  kwargs: JsonObject;
}

async function main(): Promise<void> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  const calls = JSON.parse(Buffer.concat(chunks).toString("utf8")) as Call[];
  const messages = calls.map((call) => {
    const message = buildTaskMessage({ ...call, queue: "celery", origin: "gen0@test", replyTo: "reply" });
    return { headers: message.headers, properties: message.properties, body: message.body.toString("utf8") };
  });
  process.stdout.write(JSON.stringify(messages));
}

main().catch((error: unknown) => {
  process.stderr.write(`build-messages failed: ${String(error)}\n`);
  process.exit(2);
});
