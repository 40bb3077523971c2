/**
 * taskschema for Node: send Celery tasks over RabbitMQ or Redis, checked against their
 * contracts in the taskschema registry, and read their results back.
 *
 *     const producer = createProducer({ broker: "amqp://guest:guest@localhost//", backend: "redis://localhost/1", registry: "http://localhost:8000" });
 *     const handle = await producer.send("images.resize", { args: ["https://example.com/a.png", 640] });
 *     const stored = await handle.get({ timeoutMs: 10_000 });
 */
export { createProducer } from "./producer";
export type { GetOptions, Producer, ProducerOptions, SendOptions, TaskCall, TaskHandle } from "./producer";
export {
  BrokerError,
  ContractViolationError,
  RegistryError,
  TaskFailedError,
  TaskSchemaError,
  TaskTimeoutError,
  ValidationError,
} from "./errors";
export type { ContractViolationDetail, TaskFailure, Violation } from "./errors";
export type { ContractOptions, TaskContract } from "./validation";
export type { Json, JsonObject } from "./protocol";
