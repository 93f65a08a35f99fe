// Where the backup pages show an objection: under the control of the field it names, or
// (409, 403, 503, a field no control owns) next to the action's button.
import { html, nothing } from "lit";
import { problemKey, type FieldProblem } from "./backup-logic";

// A field's problem under its control (aria-describedby points at it).
export function fieldError(p: FieldProblem | null, key: string, id: string) {
  return p && problemKey(p.field) === key
    ? html`<span id="${id}-error" class="error-text field-error" role="alert">${p.message}</span>` : nothing;
}
// The problem no control owns (409, 403, 503): next to the action's button.
export function actionError(p: FieldProblem | null, keys: string[]) {
  return p && !keys.includes(problemKey(p.field)) ? html`<p class="error" role="alert">${p.field ? `${p.message} (field: ${p.field})` : p.message}</p>` : nothing;
}


// aria-describedby only while there is a problem to point at (no dangling id).
export function describedBy(p: FieldProblem | null, key: string, id: string) {
  return p && problemKey(p.field) === key ? `${id}-error` : nothing;
}
