// A VM's labels, set or removed in one transaction with the audit event (vm_labels.h).
#include "strata/manager/vms/vm_labels.h"

#include <fmt/format.h>

#include "strata/manager/controllers/vm_document.h"
#include "strata/model/validation.h"

namespace strata::manager {

Result<store::VmRecord> relabel_vm(store::Store& store, EventLog& events, const std::string& name,
                                   const std::map<std::string, std::optional<std::string>>& patch,
                                   std::optional<int64_t> expected_version,
                                   const std::string& actor) {
  store::VmRecord out;
  store::EventRecord audit;
  // Retried on a lost compare-and-swap: the patch applies to whatever the VM is now (a
  // controller's status write must not turn a label edit into a 409).
  auto st = store.transaction_retrying([&](store::Store& tx) -> Status {
    auto vm = tx.get_vm_by_name(name);
    if (!vm) return tl::unexpected(vm.error());
    if (expected_version && *expected_version != vm->resource_version)
      return make_error(ErrorCode::conflict,
                        fmt::format("resource_version is {}, not {}", vm->resource_version,
                                    *expected_version),
                        "resource_version");
    if (vm->deletion_requested)
      return make_error(ErrorCode::failed_precondition, "the VM is being deleted");
    auto doc = decode_vm_document(vm->spec);
    if (!doc) return tl::unexpected(doc.error());
    for (const auto& [k, v] : patch) {
      if (v)
        doc->spec.labels[k] = *v;
      else
        doc->spec.labels.erase(k);
    }
    if (auto ok = model::validate_labels("labels", doc->spec.labels); !ok) return ok;
    vm->labels = doc->spec.labels;
    vm->spec = encode(*doc);
    auto updated = tx.update_vm(*vm);
    if (!updated) return tl::unexpected(updated.error());
    auto ev = EventLog::append_in(tx, actor, "vm.update", "vm/" + name, "ok");
    if (!ev) return tl::unexpected(ev.error());
    out = *updated;
    audit = *ev;
    return {};
  });
  if (!st) return tl::unexpected(st.error());
  events.published(audit);
  return out;
}

}  // namespace strata::manager
