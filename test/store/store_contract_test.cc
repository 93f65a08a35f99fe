// Store contract, part 1: CRUD, uniqueness, compare-and-swap, concurrency, paging and
// label selection, validation. Runs against every backend (see *_store_test.cc).
#include "store_contract.h"

#include <algorithm>
#include <atomic>
#include <latch>
#include <set>
#include <thread>

namespace strata::store::testing {
namespace {

HostRecord make_host(const std::string& name) {
  HostRecord h;
  h.name = name;
  h.address = "unix:/run/strata/" + name + ".sock";
  h.state = "up";
  h.labels = {{"rack", "r1"}, {"zone", "a"}};
  h.accelerator = "tcg";
  h.inventory = R"({"cpus":4})";
  h.cert_fingerprint = "sha256:" + std::string(64, 'a');
  h.cpu_threads = 4;
  h.memory_mib = 8192;
  return h;
}

VmRecord make_vm(const std::string& name) {
  VmRecord v;
  v.name = name;
  v.spec = R"({"name":")" + name + R"(","vcpus":1})";
  v.labels = {{"app", "web"}};
  return v;
}

TEST_P(StoreContractTest, HostCrudRoundTrip) {
  auto created = store_->create_host(make_host("h1"));
  STORE_ASSERT_OK(created);
  EXPECT_EQ(created->id.size(), 36u);
  EXPECT_EQ(created->resource_version, 1);
  EXPECT_EQ(created->created_ms, 1'760'000'000'000);
  EXPECT_EQ(created->updated_ms, created->created_ms);

  auto by_id = store_->get_host(created->id);
  STORE_ASSERT_OK(by_id);
  auto by_name = store_->get_host_by_name("h1");
  STORE_ASSERT_OK(by_name);
  for (const HostRecord* h : {&*by_id, &*by_name}) {
    EXPECT_EQ(h->id, created->id);
    EXPECT_EQ(h->address, "unix:/run/strata/h1.sock");
    EXPECT_EQ(h->state, "up");
    EXPECT_EQ(h->labels, (Labels{{"rack", "r1"}, {"zone", "a"}}));
    EXPECT_EQ(h->accelerator, "tcg");
    EXPECT_EQ(h->inventory, R"({"cpus":4})");
    EXPECT_EQ(h->cpu_threads, 4);
    EXPECT_EQ(h->memory_mib, 8192);
    EXPECT_EQ(h->cert_fingerprint, "sha256:" + std::string(64, 'a'));
    EXPECT_EQ(h->resource_version, 1);
  }

  clock_->advance(std::chrono::milliseconds(5));
  HostRecord upd = *by_id;
  upd.state = "maintenance";
  upd.labels["zone"] = "b";
  auto updated = store_->update_host(upd);
  STORE_ASSERT_OK(updated);
  EXPECT_EQ(updated->resource_version, 2);
  EXPECT_EQ(updated->updated_ms, created->created_ms + 5);
  EXPECT_EQ(updated->created_ms, created->created_ms);
  EXPECT_EQ(store_->get_host(created->id)->labels.at("zone"), "b");

  auto beat = store_->touch_host_heartbeat(created->id, 1234, "unreachable");
  STORE_ASSERT_OK(beat);
  EXPECT_EQ(beat->resource_version, 3);
  EXPECT_EQ(beat->last_heartbeat_ms, 1234);
  EXPECT_EQ(beat->state, "unreachable");
  STORE_ASSERT_CODE(store_->touch_host_heartbeat(created->id, 1, "sideways"),
                    ErrorCode::invalid_argument);
  STORE_ASSERT_CODE(store_->touch_host_heartbeat("nope", 1, "up"), ErrorCode::not_found);

  STORE_ASSERT_OK(store_->delete_host(created->id, 3));
  STORE_ASSERT_CODE(store_->get_host(created->id), ErrorCode::not_found);
  STORE_ASSERT_CODE(store_->get_host_by_name("h1"), ErrorCode::not_found);
  STORE_ASSERT_CODE(store_->delete_host(created->id, std::nullopt), ErrorCode::not_found);
}

TEST_P(StoreContractTest, VmPlacementNeedsExistingHostAndPinsIt) {
  VmRecord orphan = make_vm("orphan");
  orphan.host_id = "no-such-host";
  auto bad = store_->create_vm(orphan);
  STORE_ASSERT_CODE(bad, ErrorCode::failed_precondition);
  EXPECT_EQ(bad.error().field, "host_id");

  auto host = store_->create_host(make_host("h1"));
  STORE_ASSERT_OK(host);
  VmRecord v = make_vm("vm1");
  v.host_id = host->id;
  v.desired_state = "stopped";
  auto vm = store_->create_vm(v);
  STORE_ASSERT_OK(vm);
  auto got = store_->get_vm_by_name("vm1");
  STORE_ASSERT_OK(got);
  EXPECT_EQ(got->host_id, host->id);
  EXPECT_EQ(got->desired_state, "stopped");
  EXPECT_EQ(got->spec, v.spec);
  EXPECT_EQ(got->status, "{}");
  EXPECT_FALSE(got->deletion_requested);
  STORE_ASSERT_OK(store_->create_vm(make_vm("unplaced")));

  VmListOptions on_host;
  on_host.host_id = host->id;
  auto listed = store_->list_vms(on_host);
  STORE_ASSERT_OK(listed);
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ(listed->front().name, "vm1");

  STORE_ASSERT_CODE(store_->delete_host(host->id, std::nullopt), ErrorCode::failed_precondition);

  clock_->advance(std::chrono::milliseconds(7));
  VmRecord del = *got;
  del.deletion_requested = true;
  del.host_id.reset();
  del.status = R"({"state":"stopped"})";
  auto marked = store_->update_vm(del);
  STORE_ASSERT_OK(marked);
  EXPECT_TRUE(marked->deletion_requested);
  EXPECT_EQ(marked->deletion_requested_ms, vm->created_ms + 7);
  EXPECT_FALSE(marked->host_id.has_value());
  EXPECT_EQ(marked->status, R"({"state":"stopped"})");
  STORE_ASSERT_OK(store_->delete_host(host->id, std::nullopt));
  STORE_ASSERT_OK(store_->delete_vm(vm->id, marked->resource_version));
  STORE_ASSERT_CODE(store_->get_vm(vm->id), ErrorCode::not_found);
}

TEST_P(StoreContractTest, NamesAndIdsAreUnique) {
  auto a = store_->create_host(make_host("same"));
  STORE_ASSERT_OK(a);
  STORE_ASSERT_CODE(store_->create_host(make_host("same")), ErrorCode::already_exists);
  HostRecord dup_id = make_host("other");
  dup_id.id = a->id;
  STORE_ASSERT_CODE(store_->create_host(dup_id), ErrorCode::already_exists);
  // Two hosts never share an agent address (the manager would dial one for both).
  HostRecord same_address = make_host("elsewhere");
  same_address.address = a->address;
  auto taken = store_->create_host(same_address);
  STORE_ASSERT_CODE(taken, ErrorCode::already_exists);
  EXPECT_EQ(taken.error().field, "address");
  auto b = store_->create_host(make_host("b"));
  STORE_ASSERT_OK(b);
  HostRecord moved = *b;
  moved.address = a->address;
  STORE_ASSERT_CODE(store_->update_host(moved), ErrorCode::already_exists);
  // Hosts without an address (records made by tests and tools) do not collide.
  HostRecord bare1 = make_host("bare1"), bare2 = make_host("bare2");
  bare1.address = bare2.address = "";
  STORE_ASSERT_OK(store_->create_host(bare1));
  STORE_ASSERT_OK(store_->create_host(bare2));
  // The address is free again once its host is gone.
  STORE_ASSERT_OK(store_->delete_host(a->id, std::nullopt));
  STORE_ASSERT_OK(store_->create_host(same_address));

  auto v1 = store_->create_vm(make_vm("vm-a"));
  STORE_ASSERT_OK(v1);
  auto v2 = store_->create_vm(make_vm("vm-b"));
  STORE_ASSERT_OK(v2);
  STORE_ASSERT_CODE(store_->create_vm(make_vm("vm-a")), ErrorCode::already_exists);
  VmRecord rename = *v2;
  rename.name = "vm-a";
  STORE_ASSERT_CODE(store_->update_vm(rename), ErrorCode::already_exists);
  EXPECT_EQ(store_->get_vm(v2->id)->name, "vm-b");

  // The same name in different kinds is fine.
  STORE_ASSERT_OK(store_->create_vm(make_vm("same")));
}

TEST_P(StoreContractTest, CompareAndSwapRejectsStaleVersions) {
  auto vm = store_->create_vm(make_vm("cas"));
  STORE_ASSERT_OK(vm);
  VmRecord first = *vm;
  first.desired_state = "stopped";
  auto won = store_->update_vm(first);
  STORE_ASSERT_OK(won);
  EXPECT_EQ(won->resource_version, 2);

  VmRecord stale = *vm;  // still version 1
  stale.labels["x"] = "y";
  auto lost = store_->update_vm(stale);
  STORE_ASSERT_CODE(lost, ErrorCode::conflict);
  EXPECT_EQ(lost.error().field, "resource_version");
  EXPECT_EQ(store_->get_vm(vm->id)->labels.count("x"), 0u);

  STORE_ASSERT_CODE(store_->delete_vm(vm->id, 1), ErrorCode::conflict);
  VmRecord ghost = make_vm("ghost");
  ghost.id = "00000000-0000-7000-8000-000000000000";
  ghost.resource_version = 1;
  STORE_ASSERT_CODE(store_->update_vm(ghost), ErrorCode::not_found);
  STORE_ASSERT_CODE(store_->delete_vm(ghost.id, 1), ErrorCode::not_found);
  STORE_ASSERT_OK(store_->delete_vm(vm->id, 2));
}

TEST_P(StoreContractTest, ConcurrentCasHasExactlyOneWinner) {
  constexpr int kThreads = 6;
  constexpr int kRounds = 15;
  auto vm = store_->create_vm(make_vm("race"));
  STORE_ASSERT_OK(vm);
  int64_t version = vm->resource_version;
  for (int round = 0; round < kRounds; ++round) {
    std::atomic<int> wins{0}, conflicts{0}, others{0};
    std::latch start(kThreads);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        VmRecord mine = *vm;
        mine.resource_version = version;
        mine.labels["winner"] = std::to_string(t);
        start.arrive_and_wait();
        auto r = store_->update_vm(mine);
        if (r) {
          ++wins;
        } else if (r.error().code == ErrorCode::conflict) {
          ++conflicts;
        } else {
          ++others;
        }
      });
    }
    for (auto& th : threads) th.join();
    ASSERT_EQ(wins.load(), 1) << "round " << round;
    ASSERT_EQ(conflicts.load(), kThreads - 1) << "round " << round;
    ASSERT_EQ(others.load(), 0);
    auto now = store_->get_vm(vm->id);
    STORE_ASSERT_OK(now);
    ASSERT_EQ(now->resource_version, version + 1);
    version = now->resource_version;
  }
}

TEST_P(StoreContractTest, ConcurrentReadModifyWriteLosesNoUpdate) {
  constexpr int kThreads = 4;
  constexpr int kIncrements = 25;
  auto host = store_->create_host(make_host("counter"));
  STORE_ASSERT_OK(host);
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kIncrements; ++i) {
        for (;;) {
          auto cur = store_->get_host(host->id);
          if (!cur) {
            ++failures;
            return;
          }
          cur->cpu_threads += 1;
          auto r = store_->update_host(*cur);
          if (r) break;
          if (r.error().code != ErrorCode::conflict) {
            ++failures;
            return;
          }
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  ASSERT_EQ(failures.load(), 0);
  auto end = store_->get_host(host->id);
  STORE_ASSERT_OK(end);
  EXPECT_EQ(end->cpu_threads, 4 + kThreads * kIncrements);
  EXPECT_EQ(end->resource_version, 1 + kThreads * kIncrements);
}

TEST_P(StoreContractTest, ListPagesByIdAndSelectsByLabels) {
  std::vector<std::string> ids;
  for (int i = 0; i < 25; ++i) {
    VmRecord v = make_vm("vm-" + std::to_string(i));
    v.labels = {{"tier", i % 3 == 0 ? "db" : "web"}, {"n", std::to_string(i)}};
    auto r = store_->create_vm(v);
    STORE_ASSERT_OK(r);
    ids.push_back(r->id);
  }
  std::sort(ids.begin(), ids.end());

  std::vector<std::string> seen;
  VmListOptions page;
  page.limit = 10;
  for (;;) {
    auto r = store_->list_vms(page);
    STORE_ASSERT_OK(r);
    for (const auto& v : *r) seen.push_back(v.id);
    if (static_cast<int>(r->size()) < page.limit) break;
    page.after_id = r->back().id;
  }
  EXPECT_EQ(seen, ids);

  VmListOptions db;
  db.label_selector = {{"tier", "db"}};
  auto all_db = store_->list_vms(db);
  STORE_ASSERT_OK(all_db);
  EXPECT_EQ(all_db->size(), 9u);  // 0,3,...,24
  for (const auto& v : *all_db) EXPECT_EQ(v.labels.at("tier"), "db");

  db.limit = 4;
  std::set<std::string> db_seen;
  for (;;) {
    auto r = store_->list_vms(db);
    STORE_ASSERT_OK(r);
    for (const auto& v : *r) db_seen.insert(v.id);
    if (static_cast<int>(r->size()) < db.limit) break;
    db.after_id = r->back().id;
  }
  EXPECT_EQ(db_seen.size(), 9u);

  VmListOptions exact;
  exact.label_selector = {{"tier", "db"}, {"n", "3"}};
  auto one = store_->list_vms(exact);
  STORE_ASSERT_OK(one);
  ASSERT_EQ(one->size(), 1u);
  EXPECT_EQ(one->front().name, "vm-3");

  HostListOptions hosts_up;
  hosts_up.state = "up";
  STORE_ASSERT_OK(store_->create_host(make_host("h-up")));
  HostRecord m = make_host("h-maint");
  m.state = "maintenance";
  STORE_ASSERT_OK(store_->create_host(m));
  auto ups = store_->list_hosts(hosts_up);
  STORE_ASSERT_OK(ups);
  ASSERT_EQ(ups->size(), 1u);
  EXPECT_EQ(ups->front().name, "h-up");
  VmListOptions bad;
  bad.limit = -1;
  STORE_ASSERT_CODE(store_->list_vms(bad), ErrorCode::invalid_argument);
}

// The VM list for the web console: ordered by name either way with a name cursor, a
// case-insensitive name substring (LIKE wildcards taken literally), the observed state,
// all combinable with paging and labels.
TEST_P(StoreContractTest, ListVmsByNameSubstringStateAndNameOrder) {
  const std::vector<std::pair<std::string, std::string>> vms = {
      {"c-web", "running"}, {"a-db", "stopped"}, {"e-web", "running"}, {"b-web", "stopped"},
      {"d-db", "running"}, {"f-web2", "running"}};
  for (const auto& [name, state] : vms) {
    VmRecord v = make_vm(name);
    v.status = "{\"state\":\"" + state + "\"}";
    v.labels = {{"tier", name.find("web") != std::string::npos ? "web" : "db"}};
    STORE_ASSERT_OK(store_->create_vm(v));
  }
  // Every page of `o` (limit 2), following the name cursor.
  auto all_pages = [&](VmListOptions o) {
    std::vector<std::string> seen;
    o.limit = 2;
    for (int guard = 0; guard < 10; ++guard) {
      auto r = store_->list_vms(o);
      EXPECT_TRUE(r) << r.error().to_string();
      if (!r) break;
      for (const auto& v : *r) seen.push_back(v.name);
      if (static_cast<int>(r->size()) < o.limit) break;
      o.after_name = r->back().name;
    }
    return seen;
  };

  VmListOptions by_name;
  by_name.order = VmListOptions::Order::name;
  EXPECT_EQ(all_pages(by_name),
            (std::vector<std::string>{"a-db", "b-web", "c-web", "d-db", "e-web", "f-web2"}));
  VmListOptions by_name_desc;
  by_name_desc.order = VmListOptions::Order::name_desc;
  EXPECT_EQ(all_pages(by_name_desc),
            (std::vector<std::string>{"f-web2", "e-web", "d-db", "c-web", "b-web", "a-db"}));

  VmListOptions web = by_name;
  web.name_contains = "WEB";
  EXPECT_EQ(all_pages(web), (std::vector<std::string>{"b-web", "c-web", "e-web", "f-web2"}));
  web.name_contains = "web2";
  EXPECT_EQ(all_pages(web), (std::vector<std::string>{"f-web2"}));
  for (const char* wild : {"%", "_", "-w_b"}) {
    VmListOptions literal;
    literal.name_contains = wild;
    auto r = store_->list_vms(literal);
    STORE_ASSERT_OK(r);
    EXPECT_TRUE(r->empty()) << wild << ": " << r->size();
  }

  VmListOptions running = by_name;
  running.state = "running";
  EXPECT_EQ(all_pages(running), (std::vector<std::string>{"c-web", "d-db", "e-web", "f-web2"}));
  running.name_contains = "web";
  running.label_selector = {{"tier", "web"}};
  running.order = VmListOptions::Order::name_desc;
  EXPECT_EQ(all_pages(running), (std::vector<std::string>{"f-web2", "e-web", "c-web"}));
  VmListOptions none;
  none.state = "paused";
  auto r = store_->list_vms(none);
  STORE_ASSERT_OK(r);
  EXPECT_TRUE(r->empty());
  // The default order is still by id, and a name cursor does not apply to it.
  VmListOptions by_id;
  by_id.after_name = "zzz";
  EXPECT_EQ(store_->list_vms(by_id)->size(), vms.size());
}

// The host list's name filter (the console's search): a case-insensitive substring (a
// host name with capitals found too), LIKE's wildcards literal, with the state filter and
// paging.
TEST_P(StoreContractTest, ListHostsByNameSubstring) {
  for (const char* n : {"rack1-node1", "Rack1-Node2", "rack2-node1", "edge_1"})
    STORE_ASSERT_OK(store_->create_host(make_host(n)));
  HostRecord m = make_host("rack1-maint");
  m.state = "maintenance";
  STORE_ASSERT_OK(store_->create_host(m));
  auto names = [&](HostListOptions o) {
    std::vector<std::string> out;
    for (;;) {
      auto r = store_->list_hosts(o);
      EXPECT_TRUE(r.has_value());
      if (!r) return out;
      for (const auto& h : *r) out.push_back(h.name);
      if (o.limit == 0 || static_cast<int>(r->size()) < o.limit) break;
      o.after_id = r->back().id;
    }
    std::sort(out.begin(), out.end());
    return out;
  };
  HostListOptions o;
  o.name_contains = "RACK1-";
  EXPECT_EQ(names(o), (std::vector<std::string>{"Rack1-Node2", "rack1-maint", "rack1-node1"}));
  o.limit = 2;
  EXPECT_EQ(names(o).size(), 3u);
  o.limit = 0;
  o.state = "up";
  EXPECT_EQ(names(o), (std::vector<std::string>{"Rack1-Node2", "rack1-node1"}));
  o.state.reset();
  o.name_contains = "node1";
  EXPECT_EQ(names(o), (std::vector<std::string>{"rack1-node1", "rack2-node1"}));
  o.name_contains = "_";
  EXPECT_EQ(names(o), (std::vector<std::string>{"edge_1"}));
  o.name_contains = "%";
  EXPECT_TRUE(names(o).empty());
  EXPECT_EQ(names({}).size(), 5u);
}

// The host page's VM list: the host filter in the query itself, combined with the name
// order (both ways, name cursor), the name substring, the observed state and labels, page
// after page; VMs on other hosts or on none never appear.
TEST_P(StoreContractTest, ListVmsOfOneHostPagedByName) {
  auto h1 = store_->create_host(make_host("h1"));
  auto h2 = store_->create_host(make_host("h2"));
  STORE_ASSERT_OK(h1);
  STORE_ASSERT_OK(h2);
  std::vector<std::string> on_h1;
  for (int i = 0; i < 12; ++i) {
    // Interleaved names: h1 holds every VM whose number is even, h2 the odd, one unplaced.
    std::string name = "vm-" + std::string(i < 10 ? "0" : "") + std::to_string(i);
    VmRecord v = make_vm(name);
    v.status = std::string("{\"state\":\"") + (i % 4 == 0 ? "running" : "stopped") + "\"}";
    v.labels = {{"tier", i % 3 == 0 ? "web" : "db"}};
    if (i == 11) {
      // unplaced
    } else if (i % 2 == 0) {
      v.host_id = h1->id;
      on_h1.push_back(name);
    } else {
      v.host_id = h2->id;
    }
    STORE_ASSERT_OK(store_->create_vm(v));
  }
  auto all_pages = [&](VmListOptions o, int limit) {
    std::vector<std::string> seen;
    o.limit = limit;
    for (int guard = 0; guard < 20; ++guard) {
      auto r = store_->list_vms(o);
      EXPECT_TRUE(r) << r.error().to_string();
      if (!r) break;
      for (const auto& v : *r) {
        EXPECT_EQ(v.host_id, o.host_id) << v.name;
        seen.push_back(v.name);
      }
      if (static_cast<int>(r->size()) < limit) break;
      o.after_name = r->back().name;
    }
    return seen;
  };
  VmListOptions mine;
  mine.host_id = h1->id;
  mine.order = VmListOptions::Order::name;
  EXPECT_EQ(all_pages(mine, 2), on_h1);
  EXPECT_EQ(all_pages(mine, 4), on_h1);
  VmListOptions desc = mine;
  desc.order = VmListOptions::Order::name_desc;
  EXPECT_EQ(all_pages(desc, 4), std::vector<std::string>(on_h1.rbegin(), on_h1.rend()));
  VmListOptions running = mine;
  running.state = "running";
  EXPECT_EQ(all_pages(running, 1), (std::vector<std::string>{"vm-00", "vm-04", "vm-08"}));
  VmListOptions named = mine;
  named.name_contains = "VM-1";
  EXPECT_EQ(all_pages(named, 1), (std::vector<std::string>{"vm-10"}));
  VmListOptions web = desc;
  web.label_selector = {{"tier", "web"}};
  EXPECT_EQ(all_pages(web, 1), (std::vector<std::string>{"vm-06", "vm-00"}));
  VmListOptions theirs = mine;
  theirs.host_id = h2->id;
  EXPECT_EQ(all_pages(theirs, 3).size(), 5u);
  VmListOptions nobody = mine;
  nobody.host_id = "no-such-host";
  auto none = store_->list_vms(nobody);
  STORE_ASSERT_OK(none);
  EXPECT_TRUE(none->empty());
}

TEST_P(StoreContractTest, ValidatesFieldsBeforeWriting) {
  HostRecord h = make_host("");
  auto r = store_->create_host(h);
  STORE_ASSERT_CODE(r, ErrorCode::invalid_argument);
  EXPECT_EQ(r.error().field, "name");
  h = make_host("h");
  h.state = "on-fire";
  STORE_ASSERT_CODE(store_->create_host(h), ErrorCode::invalid_argument);
  VmRecord v = make_vm("v");
  v.desired_state = "paused";
  auto rv = store_->create_vm(v);
  STORE_ASSERT_CODE(rv, ErrorCode::invalid_argument);
  EXPECT_EQ(rv.error().field, "desired_state");
  TaskRecord t;
  t.kind = "vm.create";
  t.progress = 101;
  STORE_ASSERT_CODE(store_->create_task(t), ErrorCode::invalid_argument);
  auto empty = store_->list_vms({});
  STORE_ASSERT_OK(empty);
  EXPECT_TRUE(empty->empty());
}

}  // namespace
}  // namespace strata::store::testing
