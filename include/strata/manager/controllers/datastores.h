// Shared datastores as the manager sees them (docs/internals/datastores.md): each host's
// inventory lists the datastores it mounts (name, UUID, free space); a VM's disk names one.
// Pure functions over store records: no I/O.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "strata/common/error.h"
#include "strata/model/vm_spec.h"
#include "strata/store/records.h"

namespace strata::manager {

struct HostDatastore {
  std::string name;
  std::string id;  // UUID from the datastore's marker file
  uint64_t total_bytes = 0;
  uint64_t free_bytes = 0;
};

// The datastores in a host's inventory JSON (malformed entries are skipped).
std::vector<HostDatastore> host_datastores(const std::string& inventory_json);

// The scheduler's key for a datastore: "NAME@UUID". A host qualifies for a VM only when it
// mounts the same storage under the same name (the agent opens the disk by name and checks
// the UUID).
std::string datastore_key(const std::string& name, const std::string& id);

// Bytes in use on a datastore as its host sees it: total - free, where free is what the agent
// may still write (statvfs f_bavail), so blocks the file system keeps for root count as used.
uint64_t used_bytes(const HostDatastore& ds);

// One storage (one UUID) as the fleet sees it. Every host that mounts it reports its own
// statvfs of the same file system; the figures are those of the host that reported last
// (highest last_heartbeat_ms), and the storage is counted once, however many hosts mount it.
struct DatastoreUsage {
  std::string name;
  std::string id;
  uint64_t total_bytes = 0;
  uint64_t used_bytes = 0;
  uint64_t free_bytes = 0;
  int64_t hosts = 0;        // hosts that mount it
  int64_t reported_ms = 0;  // last_heartbeat_ms of the host whose figures these are
};

// Adds up the datastores of the hosts, one entry per UUID (the dashboard summary).
class DatastoreTally {
 public:
  void add(const store::HostRecord& host, const std::vector<HostDatastore>& mounted);
  // By name, then UUID.
  std::vector<DatastoreUsage> items() const;

 private:
  std::map<std::string, DatastoreUsage> by_id_;
};

// Fills in `datastore_id` of each disk that names a datastore without one, from the hosts
// that mount a datastore of that name. invalid_argument (field disks[i].datastore) when no
// host mounts it; failed_precondition when hosts report different UUIDs for that name (two
// storages under one name: rename one). A given id must be one some host reports.
Status resolve_datastores(model::VmSpec& spec, const std::vector<store::HostRecord>& hosts);

}  // namespace strata::manager
