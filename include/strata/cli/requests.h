// Command-line values -> REST requests, as pure functions: what `strata vm create ...`
// sends is decided here (and unit-tested), not inside the HTTP code. Errors returned here
// are client-side usage errors (exit code 2).
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "strata/common/error.h"

namespace strata::cli {

struct ApiRequest {
  std::string method;                  // "GET", "POST", ...
  std::string target;                  // path and query: "/api/v1/vms/web-1/start"
  std::optional<nlohmann::json> body;  // JSON body, when any
};

// Percent-encodes everything except unreserved characters (RFC 3986).
std::string url_escape(std::string_view text);

struct VmCreateOptions {
  std::string name;
  uint64_t vcpus = 0;
  std::string memory;                   // "512M"
  std::string image;                    // boot disk from this image (exclusive with kernel)
  std::string datastore;                // the boot disk (--image) on this datastore
  std::string kernel, initrd, cmdline;  // direct kernel boot (image names)
  std::vector<std::string> disks;       // "name=data,size=1G[,image=IMG][,boot][,readonly]"
  std::vector<std::string> nics;        // "user" | "bridge=br0"
  std::vector<std::string> labels;      // "k=v"
  std::vector<std::string> selectors;   // "k=v" node selector
  std::string host;
  std::string anti_affinity_group;
  std::string affinity_group;           // keep together with the group's VMs
  std::vector<std::string> avoids;      // "k=v": keep off hosts carrying all of them
  bool ha = false;       // restart on another host when this one fails (fenced first)
  int ha_priority = -1;  // 0..1000, higher first; -1: the server's default (0)
  bool no_start = false;
  // Guest CPU: "" = the cluster's CPU baseline; "host", "max" or a QEMU model name.
  std::string cpu_model;
  // cloud-init (docs/internals/cloud-init.md). The command reads the files; these hold
  // their contents, so building the request stays pure.
  std::string hostname;                 // --hostname
  std::string user;                     // --user NAME: one user; the next four need it
  std::vector<std::string> ssh_keys;    // --ssh-key FILE: the file's public keys, one a line
  std::string password_hash;            // --password-hash: crypt(3) only
  bool sudo = false;                    // --sudo: passwordless sudo for --user
  std::vector<std::string> ips;         // --ip, one per --nic in order: "dhcp" | "CIDR[,gw=IP][,dns=IP]..."
  std::string user_data;                // --cloud-init-user-data FILE's content
  // Installing from an ISO (docs/internals/firmware.md).
  std::string cdrom;                    // --cdrom ISO: an image of kind iso in the CD-ROM
  std::string boot;                     // --boot cdrom,disk: the firmware's boot order
  std::string firmware;                 // --firmware bios|uefi
  std::string watchdog;                 // --watchdog ACTION: an i6300esb watchdog ("" none)
};

// The public keys of an authorized_keys-style file (one a line; empty lines and '#'
// comments skipped). `file` names it in errors; no key at all is an error.
Result<std::vector<std::string>> ssh_keys_from_file(std::string_view text, const std::string& file);
// One --ip value for NIC `nic`: "dhcp" -> {"nic", "dhcp4": true}; "192.0.2.10/24[,gw=IP]
// [,dns=IP]..." -> {"nic", "address", "gateway"?, "nameservers"?}. The shape is checked
// here; the server checks the addresses themselves (400 naming cloud_init.network[i]....).
Result<nlohmann::json> parse_ip_spec(std::string_view text, size_t nic);

// The JSON text of a request's body ("" when none), as the HTTP client sends it and
// --dry-run prints it (indent >= 0). Never throws: bytes of an argument that are not UTF-8
// become U+FFFD (the server then refuses the name or label, naming the field) instead of
// aborting the CLI.
std::string body_text(const ApiRequest& req, int indent = -1);

// Repeated key=value flags (--label, --selector) -> {"key": "value", ...}; `flag` names
// the flag in errors. An empty list gives {}.
Result<nlohmann::json> parse_key_values(const std::vector<std::string>& items, const char* flag);

// "name=data,size=1G,image=IMG,boot,readonly" -> {"name","size_bytes","image","boot",...}
Result<nlohmann::json> parse_disk_spec(std::string_view text);
// "user" | "bridge=br0" | "bridge=br0,mac=52:54:00:..." -> {"mode","bridge","mac"}
Result<nlohmann::json> parse_nic_spec(std::string_view text);

Result<ApiRequest> build_vm_create(const VmCreateOptions& o);
ApiRequest build_vm_list(const std::vector<std::string>& label_selector, const std::string& host);
ApiRequest build_vm_get(const std::string& name);
// verb: start|reboot|pause|resume. stop has its own builder.
ApiRequest build_vm_action(const std::string& name, const std::string& verb);
// VM snapshots (cmd_snapshot.cc): POST/GET /vms/{vm}/snapshots, POST .../{name}/revert,
// DELETE .../{name}.
ApiRequest build_snapshot_create(const std::string& vm, const std::string& name);
ApiRequest build_snapshot_list(const std::string& vm);
ApiRequest build_snapshot_revert(const std::string& vm, const std::string& name);
ApiRequest build_snapshot_delete(const std::string& vm, const std::string& name);
// Templates and clones (cmd_clone.cc): POST /vms/{vm}/template, POST /vms/{src}/clone
// {"name", "linked"?} (linked unset: the server's default, linked for a template).
ApiRequest build_vm_template(const std::string& vm);
ApiRequest build_vm_clone(const std::string& source, const std::string& name,
                          std::optional<bool> linked);
ApiRequest build_vm_stop(const std::string& name, bool force, std::optional<uint64_t> timeout_s);
// POST /vms/{name}/cdrom: {"image": iso} to insert or change, {"image": null} to eject.
// strata vm resize-disk NAME DISK SIZE: SIZE as "20G", "512M" or MiB without a unit.
Result<ApiRequest> build_vm_resize_disk(const std::string& name, const std::string& disk,
                                        const std::string& size);
ApiRequest build_vm_cdrom(const std::string& name, const std::optional<std::string>& image);
// Hot-plug: `strata vm attach-disk NAME DISK --size S | --base IMAGE [--readonly]
// [--datastore DS]`, `detach-disk NAME DISK`, `attach-nic NAME [--bridge BR [--vlan N]] [--mac MAC]`,
// `detach-nic NAME MAC`. A size is "20G", "512M" (MiB without a unit).
struct DiskAttachArgs {
  std::string disk, size, base_image, datastore;
  bool readonly = false;
};
Result<ApiRequest> build_vm_attach_disk(const std::string& name, const DiskAttachArgs& a);
ApiRequest build_vm_detach_disk(const std::string& name, const std::string& disk);
ApiRequest build_vm_attach_nic(const std::string& name, const std::string& bridge,
                               const std::string& mac, uint32_t vlan = 0);
ApiRequest build_vm_detach_nic(const std::string& name, const std::string& mac);
// POST /vms/{name}/migrate; empty host: the scheduler chooses; 0s: the server's defaults;
// tls false: "tls": false (unencrypted), true: the cluster default.
ApiRequest build_vm_migrate(const std::string& name, const std::string& host,
                            uint64_t max_bandwidth, uint64_t downtime_max_ms, bool tls = true,
                            bool auto_converge = false, bool postcopy = false);
// POST /vms/{name}/migrate/cancel
ApiRequest build_vm_migrate_cancel(const std::string& name);
ApiRequest build_vm_delete(const std::string& name);

ApiRequest build_host_list();
ApiRequest build_host_get(const std::string& name);
// edits: "k=v" sets, "k-" removes.
Result<ApiRequest> build_host_label(const std::string& name, const std::vector<std::string>& edits);
// on_off: "on" | "off"
Result<ApiRequest> build_host_maintenance(const std::string& name, const std::string& on_off);
// POST /hosts/{name}/evacuate: maintenance on, running VMs migrate away (a task).
// partial: move what fits even when some VM would not (else 409 naming them).
ApiRequest build_host_evacuate(const std::string& name, bool partial = false);
// PATCH /hosts/{name} {"cluster"}.
Result<ApiRequest> build_host_cluster(const std::string& name, const std::string& cluster);
// Clusters: list, show, create (cpu_baseline "auto" or a model), set the baseline, delete.
ApiRequest build_cluster_list();
ApiRequest build_cluster_get(const std::string& name);
Result<ApiRequest> build_cluster_create(const std::string& name, const std::string& cpu_baseline);
Result<ApiRequest> build_cluster_set(const std::string& name, const std::string& cpu_baseline);
ApiRequest build_cluster_delete(const std::string& name);

ApiRequest build_image_list();
// POST /images?name=&kind= (disk|kernel|initrd); the body is streamed from a file.
ApiRequest build_image_put(const std::string& name, const std::string& kind = "disk");
// VM import (docs/internals/import.md): the descriptor mapped by the manager, then the
// archive (an OVA, or domain.xml + disk-<i>) as the body of the import.
// `networks`: source network -> bridge (--network-map SRC=BRIDGE); sent as the plan's
// network_map object and the import's network_map query parameter (a JSON object).
ApiRequest build_vm_import_plan(const std::string& format, const std::string& descriptor,
                                const std::map<std::string, std::string>& networks = {});
ApiRequest build_vm_import(const std::string& format, const std::string& name,
                           const std::string& host, bool start,
                           const std::map<std::string, std::string>& networks = {});
// The import's own task (kind vm.import) while the manager converts: the newest tasks of
// the VM's name when the CLI knows it, else the newest running tasks.
ApiRequest build_import_task_find(const std::string& vm_name);
// From the answer of build_import_task_find: the newest vm.import task not yet ended (of
// `vm_name` when given), or null.
nlohmann::json pick_import_task(const nlohmann::json& list, const std::string& vm_name);
ApiRequest build_image_get(const std::string& name);
ApiRequest build_image_delete(const std::string& name);

ApiRequest build_task_get(const std::string& id);
ApiRequest build_events_list(std::optional<int64_t> after, int limit);
ApiRequest build_events_stream(std::optional<int64_t> after);

// role: admin|operator|viewer; ttl: duration string ("24h") or empty.
Result<ApiRequest> build_token_create(const std::string& name, const std::string& role,
                                      const std::string& ttl);
// count: 0 for one token (the answer is the token), else that many in one request (the
// answer lists them under join_tokens).
Result<ApiRequest> build_join_token_create(const std::string& ttl, int count = 0);
ApiRequest build_join_token_list();
ApiRequest build_join_token_delete(const std::string& id);
ApiRequest build_token_delete(const std::string& id);

ApiRequest build_version();
// tail_bytes: how much console history the server sends first.
ApiRequest build_console(const std::string& name, std::optional<uint64_t> tail_bytes);

}  // namespace strata::cli
