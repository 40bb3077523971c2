// Sends demo.greet through its generated helper with the real `taskschema` package and
// prints what `get()` returns: `node build/send_greet.js '{"broker": ..., "backend": ...,
// "queue": ..., "timeoutMs": ...}'` writes `{"id": ..., "greeting": {...}}`.
import { createProducer } from "taskschema";

import { demo } from "./gen/index.js";

interface Instruction {
  broker: string;
  backend: string;
  queue: string;
  timeoutMs: number;
}

const instruction = JSON.parse(process.argv[2] ?? "{}") as Instruction;
const producer = createProducer({ broker: instruction.broker, backend: instruction.backend });
try {
  const handle = await demo.greet(
    producer,
    { person: { name: "Ada", born: "1990-01-01T00:00:00Z" } },
    { queue: instruction.queue },
  );
  const greeting: demo.Greeting = await handle.get({ timeoutMs: instruction.timeoutMs });
  process.stdout.write(JSON.stringify({ id: handle.id, greeting }));
} finally {
  await producer.close();
}
