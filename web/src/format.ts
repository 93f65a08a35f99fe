// Small pure helpers the pages share (unit-tested in test/unit).
import type { Host, Vm } from "./api/client";

export type Role = "viewer" | "operator" | "admin";

export function canOperate(role: Role | ""): boolean {
  return role === "operator" || role === "admin";
}

export function vmState(vm: Vm): string {
  return vm.status?.state ?? "unknown";
}

// VMs counted by observed state, largest first.
export function countByState(vms: Vm[]): Array<[string, number]> {
  const counts = new Map<string, number>();
  for (const vm of vms) counts.set(vmState(vm), (counts.get(vmState(vm)) ?? 0) + 1);
  return [...counts.entries()].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
}

export interface Allocation {
  vcpus: number;
  memoryMib: number;
}

function specNumber(vm: Vm, key: string): number {
  const v = (vm.spec as Record<string, unknown> | undefined)?.[key];
  return typeof v === "number" ? v : 0;
}

// vCPUs and memory of the VMs placed on each host (what the scheduler counts).
export function allocations(vms: Vm[]): Map<string, Allocation> {
  const out = new Map<string, Allocation>();
  for (const vm of vms) {
    const host = vm.host || vm.status?.host;
    if (!host) continue;
    const a = out.get(host) ?? { vcpus: 0, memoryMib: 0 };
    a.vcpus += specNumber(vm, "vcpus");
    a.memoryMib += specNumber(vm, "memory_mib");
    out.set(host, a);
  }
  return out;
}

export function percent(used: number, total: number): number {
  if (!total || total <= 0) return 0;
  return Math.round((used / total) * 100);
}

export function mib(n: number | undefined): string {
  if (n === undefined) return "-";
  return n >= 1024 ? `${(n / 1024).toFixed(1)} GiB` : `${n} MiB`;
}

export function hostAlert(h: Host): string {
  if (h.state === "unreachable" || h.reachability === "unreachable") return "unreachable";
  return "";
}

export function time(ms: number | undefined): string {
  if (!ms) return "-";
  return new Date(ms).toLocaleTimeString();
}
