// The image catalog's bytes on the manager (<data_dir>/catalog/<image id>) and their
// distribution: before a VM is defined on a host, every image its spec names (kernel,
// initrd, disk bases) that the host lacks but the catalog has is pushed with PutImage.
// Names the catalog does not know are left alone: images imported on the host itself
// (`strata-agent image import`) keep working as before.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "strata/common/error.h"
#include "strata/manager/agents/agent_client.h"
#include "strata/manager/agents/connection_manager.h"
#include "strata/model/vm_spec.h"
#include "strata/store/store.h"

namespace strata::manager {

// Deadline of one call to one host when the API asks every host (list who holds an image,
// remove copies): short, since the caller waits for the slowest host.
inline constexpr std::chrono::milliseconds kHostCallTimeout{3000};

// Where the catalog keeps an image's bytes.
std::string catalog_file(const std::string& catalog_dir, const std::string& image_id);

// Image names a VM spec refers to (kernel, initrd, disk bases), without duplicates.
std::vector<std::string> referenced_images(const model::VmSpec& spec);

// Each catalog image `spec` names must be of the kind its use needs: disk bases "disk",
// the kernel "kernel", the initrd "initrd" (a kernel used as a disk base would be opened
// by QEMU with format probing). invalid_argument naming the REST field ("kernel",
// "initrd", "disks[i].image") otherwise. Names the catalog does not know are left to the
// host, whose agent checks the kinds it knows.
Status check_image_kinds(store::Store& store, const model::VmSpec& spec);

// Calls `call` once for every host in the store, in parallel (at most 16 at a time), with
// the host's client when it is up now and null otherwise; returns when every call has.
// Each call bounds itself with a short deadline: one slow host costs its own deadline, not
// the sum over all hosts.
void for_each_host(store::Store& store, ConnectionManager& agents,
                   const std::function<void(const store::HostRecord&, AgentClient*)>& call);

// Image name -> the name of one VM whose spec refers to it, over every VM in the store.
Result<std::map<std::string, std::string>> image_users(store::Store& store);

// What ImageDistributor::repair() found after a crash: records whose bytes never reached
// the catalog folder (the upload was never answered with 201), files no record names (a
// delete interrupted between the record and the file). Records without bytes that a VM
// refers to are kept and reported, never silently dropped.
struct CatalogRepair {
  std::vector<std::string> records_removed;  // image names
  std::vector<std::string> files_removed;    // file names under the catalog folder
  std::vector<std::string> missing_in_use;   // image names: no bytes, but a VM uses them
};

// One host's copy of a deleted catalog image.
struct HostCopy {
  std::string host;
  std::string outcome;  // removed | kept (the host refused: a disk is based on it)
                        // | unreachable (not up now; its copy stays)
  std::string message;
};

class ImageDistributor {
 public:
  ImageDistributor(store::Store& store, std::string catalog_dir)
      : store_(store), catalog_dir_(std::move(catalog_dir)) {}

  const std::string& catalog_dir() const { return catalog_dir_; }

  // Makes sure every catalog image `spec` names is on the agent `host_id` reached through
  // `client`. progress(message) reports each copy ("copying image X to host: 40%").
  // Errors come from the agent (unavailable: retry later; already_exists: the host has a
  // different image under that name; invalid_argument: size/sha256 mismatch).
  Status ensure(const std::string& host_id, AgentClient& client, const model::VmSpec& spec,
                const std::function<void(const std::string&)>& progress);

  // Moves a checked upload (a file in the catalog's uploads/ folder) into the catalog under
  // a new record. Durable before it returns: the file is fsynced before the record is
  // written, the catalog folder after the rename, so an image answered 201 survives a
  // crash or power loss; a crash in between leaves a record without bytes that repair()
  // removes (the upload was never answered).
  Result<store::ImageRecord> commit_upload(const std::string& upload_path,
                                           const store::ImageRecord& record);

  // Makes the catalog's records and files agree (run at start, before the API serves).
  Result<CatalogRepair> repair();

  // After the catalog record of `image` is gone: removes the copies on every host that is
  // up; a host whose disks are based on its copy keeps it (the agent refuses).
  std::vector<HostCopy> remove_host_copies(const store::ImageRecord& image,
                                           ConnectionManager& agents);

 private:
  std::shared_ptr<std::mutex> lock_for(const std::string& host_id, const std::string& name);

  store::Store& store_;
  std::string catalog_dir_;
  std::mutex mu_;
  // One push per (host, image) at a time: concurrent reconciles of VMs that share a base
  // wait for the first copy instead of sending the bytes twice.
  std::map<std::string, std::shared_ptr<std::mutex>> pushes_;
};

}  // namespace strata::manager
