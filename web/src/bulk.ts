// Bulk actions on the VM list (unit-tested in test/unit): the page's selection and running
// one request per selected VM with a small concurrency, keeping each VM's own result.

export interface ItemResult {
  name: string;
  ok: boolean;
  message: string;  // "accepted", or the API's envelope as text
}

// Runs `fn` for every name, at most `limit` at a time, and returns the results in the
// order of `names` (a failure does not stop the others).
export async function runEach(
  names: string[],
  limit: number,
  fn: (name: string) => Promise<{ ok: boolean; message: string }>,
): Promise<ItemResult[]> {
  const out: ItemResult[] = new Array(names.length);
  let next = 0;
  const worker = async () => {
    while (next < names.length) {
      const i = next++;
      const name = names[i]!;
      try {
        const r = await fn(name);
        out[i] = { name, ...r };
      } catch (e) {
        out[i] = { name, ok: false, message: e instanceof Error ? e.message : String(e) };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, names.length)) }, worker));
  return out;
}

// "stop: 2 of 3 succeeded, 1 failed"
export function summarize(action: string, results: ItemResult[]): string {
  const ok = results.filter((r) => r.ok).length;
  const bad = results.length - ok;
  return `${action}: ${ok} of ${results.length} succeeded${bad ? `, ${bad} failed` : ""}`;
}

// The header checkbox: every row of the page selected, some, or none.
export function pageSelection(selected: ReadonlySet<string>, shown: string[]): "all" | "some" | "none" {
  const n = shown.filter((s) => selected.has(s)).length;
  if (n === 0) return "none";
  return n === shown.length ? "all" : "some";
}

// Select-all toggles the page's rows: all selected -> none of them; otherwise all of them.
// Rows of other pages that were selected are dropped (a selection is of one page).
export function toggleAll(selected: ReadonlySet<string>, shown: string[]): Set<string> {
  return pageSelection(selected, shown) === "all" ? new Set() : new Set(shown);
}
