// The typed API client. `schema.d.ts` is generated from docs/openapi.json at every build
// (`npm run gen`), so a change to the document that breaks a call here or in a page fails
// `tsc` before anything ships.
import createClient, { type Middleware } from "openapi-fetch";
import type { components, paths } from "./schema";

export type Schemas = components["schemas"];
export type Host = Schemas["Host"];
export type Vm = Schemas["Vm"];
export type Task = Schemas["Task"];
export type StrataEvent = Schemas["Event"];
export type ErrorEnvelope = Schemas["ErrorEnvelope"];
export type Image = Schemas["Image"];
export type Token = Schemas["Token"];
export type Summary = Schemas["Summary"];
export type HostUsage = Schemas["HostUsage"];
export type DatastoreUse = Schemas["DatastoreUse"];

// The session's CSRF token (from the login answer or GET /api/v1/session), sent as
// X-CSRF-Token on every unsafe method. Never stored: a reload asks the server again.
let csrfToken = "";
export function setCsrfToken(token: string): void {
  csrfToken = token;
}

// For requests made outside this client (the image upload's XMLHttpRequest, for its
// progress events).
export function csrfTokenValue(): string {
  return csrfToken;
}

const UNSAFE = new Set(["POST", "PUT", "PATCH", "DELETE"]);

const csrf: Middleware = {
  onRequest({ request }) {
    if (UNSAFE.has(request.method.toUpperCase()) && csrfToken)
      request.headers.set("X-CSRF-Token", csrfToken);
    return request;
  },
};

// Same origin only: the session cookie goes along, no token is ever held by the page.
export const api = createClient<paths>({ baseUrl: "", credentials: "same-origin" });
api.use(csrf);

// The error envelope as one line: "message (field: x)".
export function errorText(error: unknown, fallback = "request failed"): string {
  const env = error as Partial<ErrorEnvelope> | undefined;
  const e = env?.error;
  if (!e || typeof e.message !== "string") return fallback;
  return e.field ? `${e.message} (field: ${e.field})` : e.message;
}
