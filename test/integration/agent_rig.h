// The agent's real parts assembled for an integration test: a TestRoot folder, an image
// store holding the guest images the test names, an optional netlink Network, and a
// QemuHypervisor running QEMU under the real strata-shim. Teardown stops and undefines
// every VM through the agent first; TestRoot then kills whatever still names the folder.
// Header-only: integration tests include it directly.
#pragma once

#include <unistd.h>

#include <chrono>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "guest_images.h"
#include "strata/agent/image_store.h"
#include "strata/agent/network.h"
#include "strata/agent/qemu_hypervisor.h"
#include "strata/agent/qemu_user.h"
#include "strata/common/error.h"
#include "test_root.h"

namespace strata::integration {

struct AgentRig {
  std::unique_ptr<TestRoot> root;
  agent::NetworkPtr net;  // only when make() was asked for a network
  agent::ImageStorePtr store;
  agent::HypervisorPtr hv;

  // `images`: (image name in the store, manifest.env key of the file to import).
  static Result<AgentRig> make(const std::string& prefix, const GuestImages& manifest,
                               const std::vector<std::pair<std::string, std::string>>& images,
                               bool with_network, const std::string& shim_exe,
                               std::chrono::milliseconds guest_facts_interval =
                                   std::chrono::seconds(30)) {
    AgentRig rig;
    rig.root = TestRoot::make(prefix);
    if (!rig.root) return internal_error("cannot make a test folder for " + prefix);
    if (with_network) rig.net = agent::make_netlink_network();
    auto store = agent::make_image_store(rig.root->path() + "/images");
    if (!store) return tl::unexpected(store.error());
    rig.store = std::move(*store);
    for (const auto& [name, key] : images) {
      auto r = rig.store->import_image(name, manifest.get(key));
      if (!r) return tl::unexpected(r.error());
    }
    agent::QemuOptions o;
    o.state_dir = rig.root->path() + "/state";
    o.accelerator = "tcg";  // see docs: KVM here cannot run ordinary guests
    o.images = rig.store.get();
    o.network = rig.net.get();
    o.shim_exe = shim_exe;
    o.guest_facts_interval = guest_facts_interval;
    // As strata-agent serve by default: QEMU as strata-qemu when root and the user exists.
    auto user = agent::decide_qemu_user(std::nullopt, ::geteuid(), agent::lookup_system_user);
    if (!user) return tl::unexpected(user.error());
    o.run_as = user->user;
    auto hv = agent::make_qemu_hypervisor(std::move(o));
    if (!hv) return tl::unexpected(hv.error());
    rig.hv = std::move(*hv);
    return rig;
  }

  // Best effort: force off and undefine every VM; the hypervisor is dropped.
  void stop_vms() {
    if (hv) {
      for (auto& st : hv->list()) {
        if (st.state != model::VmState::stopped && st.state != model::VmState::crashed &&
            st.state != model::VmState::defined)
          (void)hv->force_off(st.spec.name);
        (void)hv->undefine(st.spec.name);
      }
      hv.reset();
    }
  }

  // stop_vms(), then the remaining parts in reverse order.
  void teardown() {
    stop_vms();
    store.reset();
    net.reset();
    root.reset();
  }
};

}  // namespace strata::integration
