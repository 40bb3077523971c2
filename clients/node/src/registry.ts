/** Reading task contracts from the taskschema registry over HTTP. */
import { RegistryError } from "./errors";
import type { TaskContract } from "./validation";

/** `GET /tasks/{name}/versions/{n|latest}`: one version with its contract. */
export interface VersionDetail {
  task: string;
  version: number;
  id: number;
  fingerprint: string;
  deleted: boolean;
  created_at: string;
  contract: TaskContract;
}

/** The latest contract of each task, fetched once per client (a failed fetch is retried next time). */
export class RegistryClient {
  private readonly base: string;
  private readonly cache = new Map<string, Promise<VersionDetail | null>>();

  constructor(
    url: string,
    private readonly token?: string,
  ) {
    this.base = url.replace(/\/+$/, "");
  }

  /** The task's latest version, or null when the registry has no live version of it. */
  latest(task: string): Promise<VersionDetail | null> {
    let pending = this.cache.get(task);
    if (!pending) {
      pending = this.fetchLatest(task);
      this.cache.set(task, pending);
      pending.catch(() => this.cache.delete(task));
    }
    return pending;
  }

  private async fetchLatest(task: string): Promise<VersionDetail | null> {
    const url = `${this.base}/tasks/${encodeURIComponent(task)}/versions/latest`;
    const headers: Record<string, string> = { Accept: "application/json" };
    if (this.token) headers["Authorization"] = `Bearer ${this.token}`;
    let response: Response;
    try {
      response = await fetch(url, { headers, signal: AbortSignal.timeout(30_000) });
    } catch (error) {
      // fetch() says only "fetch failed"; the reason (ECONNREFUSED, a timeout...) is its cause.
      const reason = error instanceof Error && error.cause instanceof Error ? error.cause.message : String(error);
      throw new RegistryError(`registry at ${this.base} is unreachable: ${reason}`, null, "registry_unavailable", { cause: error });
    }
    const text = await response.text();
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      body = undefined;
    }
    if (response.ok && isVersionDetail(body)) return body;
    const error = body !== null && typeof body === "object" ? (body as { error?: unknown; message?: unknown }) : {};
    if (response.status === 404 && (error.error === "task_not_found" || error.error === "version_not_found")) return null;
    const code = typeof error.error === "string" ? error.error : "registry_unavailable";
    const message = typeof error.message === "string" ? error.message : text.slice(0, 200);
    throw new RegistryError(`registry GET ${url} answered ${response.status}: ${message}`, response.status, code);
  }
}

function isVersionDetail(body: unknown): body is VersionDetail {
  if (body === null || typeof body !== "object") return false;
  const contract = (body as { contract?: unknown }).contract;
  return contract !== null && typeof contract === "object" && typeof (contract as { params?: unknown }).params === "object";
}
