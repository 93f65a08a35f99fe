// REST request bodies, decoded exactly as the routes decode them: the strict parse
// (parse_json_object) then the route's decoder, for every route that takes a JSON body.
// The first line names the route (see select() in fuzz_input.h). Whatever is refused is
// rendered as the error response the client would get. Properties: no crash, no exception,
// no sanitizer report; every refusal renders as valid JSON; a VM create that is accepted
// survives the stored-document round trip.
#include "fuzz_input.h"
#include "strata/manager/api/http.h"
#include "strata/manager/api/json_fields.h"
#include "strata/manager/api/request_bodies.h"
#include "strata/manager/api/vm_rest.h"
#include "strata/manager/controllers/vm_document.h"
#include "strata/model/validation.h"

using namespace strata;
using namespace strata::manager;

namespace {

uint64_t fixed_random() { return 0x5eed5eed5eed5eedull; }

void refuse(const Error& e) {
  auto r = error_response(e);
  FUZZ_CHECK(r.status >= 400);
  FUZZ_CHECK(!nlohmann::json::parse(r.body, nullptr, false).is_discarded());
}

template <typename R>
void render(const R& result) {
  if (!result) refuse(result.error());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text;
  size_t route = fuzz::select(fuzz::as_text(data, size),
                              {"vm_create", "vm_start", "vm_stop", "vm_reboot", "vm_pause",
                               "vm_resume", "vm_delete", "host_enroll", "host_patch",
                               "token_create", "join_token_create", "vm_patch", "plan_host_down",
                               "plan_capacity"},
                              &text);
  // Action bodies and join-token bodies may be empty; the others may not.
  bool allow_empty = route != 0 && route != 7 && route != 8 && route != 9 && route < 11;
  auto body = parse_json_object(text, allow_empty);
  if (!body) {
    refuse(body.error());
    return 0;
  }
  HttpRequest req;
  req.body = std::string(text);
  switch (route) {
    case 0: {
      bool start = true;
      auto doc = vm_document_from_request(*body, &start);
      if (!doc) {
        refuse(doc.error());
        break;
      }
      auto completed = model::complete(doc->spec, &fixed_random);
      if (!completed) {
        refuse(completed.error());
        break;
      }
      doc->spec = std::move(*completed);
      std::string stored = encode(*doc);
      auto back = decode_vm_document(stored);
      FUZZ_CHECK(back.has_value());
      FUZZ_CHECK(encode(*back) == stored);
      store::VmRecord vm;
      vm.spec = stored;
      (void)HttpResponse::json(202, vm_to_json(vm, "host"));
      break;
    }
    case 1: case 3: case 4: case 5: case 6: {
      static const char* kVerb[] = {"", "start", "", "reboot", "pause", "resume", "delete"};
      if (auto st = check_vm_action_body(kVerb[route], *body); !st) refuse(st.error());
      else render(expected_version(req, &*body));
      break;
    }
    case 2:
      if (auto stop = decode_vm_stop(*body)) {
        FUZZ_CHECK(stop->timeout_s <= 3600);
        render(expected_version(req, &*body));
      } else {
        refuse(stop.error());
      }
      break;
    case 7:
      if (auto e = decode_enroll(*body)) {
        FUZZ_CHECK(!e->address.empty() && e->address.size() <= 512);
        FUZZ_CHECK(e->cpu_threads >= 0 && e->memory_mib >= 0);
      } else {
        refuse(e.error());
      }
      break;
    case 8:
      if (auto p = decode_host_patch(*body)) {
        for (const auto& [k, v] : p->labels)
          if (v) FUZZ_CHECK(model::validate_label("labels", k, *v).has_value());
        render(expected_version(req, &*body));
      } else {
        refuse(p.error());
      }
      break;
    case 9:
      if (auto t = decode_token_create(*body)) {
        if (t->ttl_s) FUZZ_CHECK(*t->ttl_s >= 1 && *t->ttl_s <= kMaxTokenTtlS);
      } else {
        refuse(t.error());
      }
      break;
    case 10:
      if (auto j = decode_join_token_create(*body)) {
        FUZZ_CHECK(j->ttl_s >= 1 && j->ttl_s <= kJoinMaxTtlS);
      } else {
        refuse(j.error());
      }
      break;
    case 11:
      if (auto p = decode_vm_patch(*body)) {
        for (const auto& [k, v] : p->labels)
          if (v) FUZZ_CHECK(model::validate_label("labels", k, *v).has_value());
        render(expected_version(req, &*body));
      } else {
        refuse(p.error());
      }
      break;
    case 12:
      if (auto h = decode_host_down_plan(*body)) {
        FUZZ_CHECK(!h->hosts.empty() && h->hosts.size() <= 1000);
      } else {
        refuse(h.error());
      }
      break;
    case 13:
      if (auto c = decode_capacity_plan(*body)) {
        FUZZ_CHECK(c->vcpus >= 1 && c->count <= kMaxPlanCount);
        FUZZ_CHECK(c->node_selector.size() <= model::kMaxLabels);
        FUZZ_CHECK(c->accelerator == "kvm" || c->accelerator == "tcg" || c->accelerator == "any");
      } else {
        refuse(c.error());
      }
      break;
  }
  return 0;
}
