// The API of clients/node (npm package "taskschema") the generated helpers are written
// against, declared here so the type check does not depend on a build of that package.
declare module "taskschema" {
  export interface SendOptions {
    queue?: string;
    priority?: number;
    countdown?: number;
    eta?: Date | string;
    expires?: number | Date | string;
    taskId?: string;
    softTimeLimit?: number;
    timeLimit?: number;
    validate?: boolean;
  }
  export interface TaskHandle<R> {
    readonly id: string;
    get(options?: { timeoutMs?: number; intervalMs?: number }): Promise<R>;
  }
  export interface Producer {
    send<R = unknown>(
      task: string,
      call: { args?: unknown[]; kwargs?: Record<string, unknown> },
      options?: SendOptions,
    ): Promise<TaskHandle<R>>;
  }
}
