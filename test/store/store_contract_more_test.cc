// Store contract, part 2: tasks, the event log, API and join tokens, bounded metrics,
// transactions, migrations, hostile names and a 10 000-VM scale pass.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <map>
#include <set>
#include <utility>
#include <vector>
#include <thread>

#include "store_contract.h"

namespace strata::store::testing {
namespace {

const std::string kHashA(64, 'a');
const std::string kHashB(64, 'b');

TEST_P(StoreContractTest, TasksTrackProgressAndFilter) {
  TaskRecord t;
  t.kind = "vm.create";
  t.target_kind = "vm";
  t.target_id = "vm-1";
  auto a = store_->create_task(t);
  STORE_ASSERT_OK(a);
  EXPECT_EQ(a->state, "pending");
  EXPECT_EQ(a->result, "{}");
  t.target_id = "vm-2";
  auto b = store_->create_task(t);
  STORE_ASSERT_OK(b);

  TaskRecord run = *a;
  run.state = "running";
  run.progress = 40;
  run.message = "copying disk";
  auto ran = store_->update_task(run);
  STORE_ASSERT_OK(ran);
  EXPECT_EQ(ran->resource_version, 2);
  STORE_ASSERT_CODE(store_->update_task(run), ErrorCode::conflict);

  TaskListOptions by_target;
  by_target.target_id = "vm-1";
  auto l = store_->list_tasks(by_target);
  STORE_ASSERT_OK(l);
  ASSERT_EQ(l->size(), 1u);
  EXPECT_EQ(l->front().progress, 40);
  EXPECT_EQ(l->front().message, "copying disk");
  TaskListOptions pending;
  pending.state = "pending";
  auto p = store_->list_tasks(pending);
  STORE_ASSERT_OK(p);
  ASSERT_EQ(p->size(), 1u);
  EXPECT_EQ(p->front().id, b->id);

  // Newest first: the same tasks in the reverse order of ids, and the cursor pages that way.
  for (int i = 0; i < 3; ++i) STORE_ASSERT_OK(store_->create_task(t));
  auto oldest = store_->list_tasks(TaskListOptions{});
  STORE_ASSERT_OK(oldest);
  ASSERT_EQ(oldest->size(), 5u);
  TaskListOptions newest;
  newest.newest_first = true;
  auto desc = store_->list_tasks(newest);
  STORE_ASSERT_OK(desc);
  std::vector<std::string> want, got;
  for (auto it = oldest->rbegin(); it != oldest->rend(); ++it) want.push_back(it->id);
  for (const auto& x : *desc) got.push_back(x.id);
  EXPECT_EQ(got, want);
  newest.limit = 2;
  newest.after_id = want[1];
  auto page = store_->list_tasks(newest);
  STORE_ASSERT_OK(page);
  ASSERT_EQ(page->size(), 2u);
  EXPECT_EQ(page->at(0).id, want[2]);
  EXPECT_EQ(page->at(1).id, want[3]);
  newest = TaskListOptions{};
  newest.newest_first = true;
  newest.target_id = "vm-2";
  auto mine = store_->list_tasks(newest);
  STORE_ASSERT_OK(mine);
  EXPECT_EQ(mine->size(), 4u);
  for (const auto& x : *mine) EXPECT_EQ(x.target_id, "vm-2");

  TaskRecord done = *ran;
  done.state = "succeeded";
  done.progress = 100;
  done.result = R"({"vm_id":"vm-1"})";
  auto fin = store_->update_task(done);
  STORE_ASSERT_OK(fin);
  EXPECT_EQ(store_->get_task(a->id)->result, R"({"vm_id":"vm-1"})");
  STORE_ASSERT_OK(store_->delete_task(a->id, fin->resource_version));
  STORE_ASSERT_CODE(store_->get_task(a->id), ErrorCode::not_found);
}

TEST_P(StoreContractTest, EventsAreOrderedAndPageable) {
  auto empty_seq = store_->last_event_seq();
  STORE_ASSERT_OK(empty_seq);
  EXPECT_EQ(*empty_seq, 0);
  for (int i = 0; i < 30; ++i) {
    EventRecord e;
    e.actor = "token:test";
    e.action = "vm.update";
    e.target = "vm/" + std::to_string(i);
    e.result = "ok";
    e.message = "n=" + std::to_string(i);
    auto r = store_->append_event(e);
    STORE_ASSERT_OK(r);
    EXPECT_GT(r->seq, 0);
    EXPECT_EQ(r->time_ms, 1'760'000'000'000);
  }
  std::vector<EventRecord> all;
  int64_t after = 0;
  for (;;) {
    auto page = store_->list_events(after, 7);
    STORE_ASSERT_OK(page);
    if (page->empty()) break;
    for (auto& e : *page) all.push_back(e);
    after = page->back().seq;
  }
  ASSERT_EQ(all.size(), 30u);
  for (size_t i = 0; i < all.size(); ++i) {
    EXPECT_EQ(all[i].message, "n=" + std::to_string(i));
    if (i > 0) {
      EXPECT_GT(all[i].seq, all[i - 1].seq);
    }
  }
  EXPECT_EQ(*store_->last_event_seq(), all.back().seq);
  EventRecord no_action;
  STORE_ASSERT_CODE(store_->append_event(no_action), ErrorCode::invalid_argument);

  // Concurrent appends: every event gets its own seq, and a reader that follows
  // last-seen seq while writers run ends up with every event exactly once.
  constexpr int kWriters = 4, kEach = 20;
  std::vector<std::thread> writers;
  std::atomic<int> failures{0};
  for (int w = 0; w < kWriters; ++w) {
    writers.emplace_back([&, w] {
      for (int i = 0; i < kEach; ++i) {
        EventRecord e;
        e.action = "concurrent";
        e.message = std::to_string(w) + "/" + std::to_string(i);
        if (!store_->append_event(e)) ++failures;
      }
    });
  }
  std::set<int64_t> seqs;
  std::set<std::string> messages;
  std::atomic<int> out_of_order{0};
  int64_t cursor = all.back().seq;
  auto drain = [&] {
    auto page = store_->list_events(cursor, 0);
    if (!page) {
      ++failures;
      return;
    }
    for (auto& e : *page) {
      if (e.seq <= cursor) ++out_of_order;
      cursor = e.seq;
      seqs.insert(e.seq);
      messages.insert(e.message);
    }
  };
  std::atomic<bool> writers_done{false};
  std::thread reader([&] {
    while (!writers_done.load()) drain();
  });
  for (auto& th : writers) th.join();
  writers_done = true;
  reader.join();
  drain();
  EXPECT_EQ(out_of_order.load(), 0);
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(seqs.size(), static_cast<size_t>(kWriters * kEach));
  EXPECT_EQ(messages.size(), static_cast<size_t>(kWriters * kEach));
}

TEST_P(StoreContractTest, EventsOfOneTargetNewestFirstPagedByBefore) {
  for (int i = 0; i < 12; ++i) {
    EventRecord e;
    e.actor = "token:test";
    e.action = "vm.start";
    e.target = i % 3 == 0 ? "vm/a" : (i % 3 == 1 ? "vm/ab" : "host/a");
    e.result = "ok";
    e.message = "n=" + std::to_string(i);
    STORE_ASSERT_OK(store_->append_event(e));
  }
  auto first = store_->list_target_events("vm/a", 0, 3);
  STORE_ASSERT_OK(first);
  ASSERT_EQ(first->size(), 3u);
  EXPECT_EQ((*first)[0].message, "n=9");
  EXPECT_EQ((*first)[1].message, "n=6");
  EXPECT_EQ((*first)[2].message, "n=3");
  auto rest = store_->list_target_events("vm/a", first->back().seq, 3);
  STORE_ASSERT_OK(rest);
  ASSERT_EQ(rest->size(), 1u);
  EXPECT_EQ((*rest)[0].message, "n=0");
  EXPECT_EQ((*rest)[0].target, "vm/a");
  auto none = store_->list_target_events("vm/nobody", 0, 10);
  STORE_ASSERT_OK(none);
  EXPECT_TRUE(none->empty());
  auto host = store_->list_target_events("host/a", 0, 100);
  STORE_ASSERT_OK(host);
  EXPECT_EQ(host->size(), 4u);
  STORE_ASSERT_CODE(store_->list_target_events("vm/a", 0, 0), ErrorCode::invalid_argument);
}

TEST_P(StoreContractTest, PruneEventsByAgeAndCountInBatches) {
  auto add = [&](int64_t time_ms, int n) {
    EventRecord e;
    e.actor = "test";
    e.action = "vm.update";
    e.time_ms = time_ms;
    e.message = "n=" + std::to_string(n);
    STORE_ASSERT_OK(store_->append_event(e));
  };
  for (int i = 0; i < 10; ++i) add(1000 + i, i);  // times 1000..1009
  STORE_ASSERT_OK(store_->prune_events(0, 0, 100));
  EXPECT_EQ(store_->list_events(0, 0)->size(), 10u) << "no limits: nothing pruned";
  // Older than 1004: events 0..3, in batches of 3.
  auto first = store_->prune_events(1004, 0, 3);
  STORE_ASSERT_OK(first);
  EXPECT_EQ(*first, 3);
  auto second = store_->prune_events(1004, 0, 3);
  STORE_ASSERT_OK(second);
  EXPECT_EQ(*second, 1);
  EXPECT_EQ(*store_->prune_events(1004, 0, 3), 0);
  auto left = store_->list_events(0, 0);
  STORE_ASSERT_OK(left);
  ASSERT_EQ(left->size(), 6u);
  EXPECT_EQ(left->front().message, "n=4");
  // At most 4 rows: the two oldest go; the age limit and the count limit together.
  EXPECT_EQ(*store_->prune_events(1000, 4, 100), 2);
  left = store_->list_events(0, 0);
  ASSERT_EQ(left->size(), 4u);
  EXPECT_EQ(left->front().message, "n=6");
  EXPECT_EQ(left->back().message, "n=9");
  int64_t last = left->back().seq;
  // Everything older than the cutoff: the table empties but seq keeps counting.
  EXPECT_EQ(*store_->prune_events(99999, 0, 100), 4);
  EXPECT_EQ(*store_->last_event_seq(), 0) << "empty table";
  add(5000, 10);
  auto after = store_->list_events(0, 0);
  ASSERT_EQ(after->size(), 1u);
  EXPECT_GT(after->front().seq, last) << "a pruned seq is never reused";
  STORE_ASSERT_CODE(store_->prune_events(1, 0, 0), ErrorCode::invalid_argument);
}

TEST_P(StoreContractTest, ApiTokensLookUpByHashAndRevoke) {
  TokenRecord t;
  t.name = "ci";
  t.role = "operator";
  t.secret_hash = kHashA;
  t.expires_ms = 1'800'000'000'000;
  auto made = store_->create_token(t);
  STORE_ASSERT_OK(made);
  auto found = store_->get_token_by_hash(kHashA);
  STORE_ASSERT_OK(found);
  EXPECT_EQ(found->id, made->id);
  EXPECT_EQ(found->role, "operator");
  EXPECT_EQ(found->expires_ms, 1'800'000'000'000);
  EXPECT_FALSE(found->revoked);
  STORE_ASSERT_CODE(store_->get_token_by_hash(kHashB), ErrorCode::not_found);

  TokenRecord plaintext = t;
  plaintext.name = "oops";
  plaintext.secret_hash = "my-secret-token";
  auto bad = store_->create_token(plaintext);
  STORE_ASSERT_CODE(bad, ErrorCode::invalid_argument);
  EXPECT_EQ(bad.error().field, "secret_hash");
  TokenRecord same_hash = t;
  same_hash.name = "other";
  STORE_ASSERT_CODE(store_->create_token(same_hash), ErrorCode::already_exists);
  TokenRecord viewer;
  viewer.name = "dash";
  viewer.role = "viewer";
  viewer.secret_hash = kHashB;
  auto v = store_->create_token(viewer);
  STORE_ASSERT_OK(v);
  EXPECT_FALSE(v->expires_ms.has_value());

  auto revoked = store_->revoke_token(made->id);
  STORE_ASSERT_OK(revoked);
  EXPECT_TRUE(revoked->revoked);
  EXPECT_EQ(revoked->resource_version, 2);
  EXPECT_TRUE(store_->get_token_by_hash(kHashA)->revoked);
  auto list = store_->list_tokens({});
  STORE_ASSERT_OK(list);
  EXPECT_EQ(list->size(), 2u);
  STORE_ASSERT_OK(store_->delete_token(made->id));
  STORE_ASSERT_CODE(store_->get_token(made->id), ErrorCode::not_found);
  STORE_ASSERT_CODE(store_->revoke_token(made->id), ErrorCode::not_found);
}

TEST_P(StoreContractTest, JoinTokensAreSingleUseAndExpire) {
  JoinTokenRecord j;
  j.secret_hash = kHashA;
  j.expires_ms = 2'000;
  auto made = store_->create_join_token(j);
  STORE_ASSERT_OK(made);
  STORE_ASSERT_CODE(store_->consume_join_token(kHashA, "host-1", 2'000),
                    ErrorCode::failed_precondition);  // expired exactly at expiry
  auto used = store_->consume_join_token(kHashA, "host-1", 1'999);
  STORE_ASSERT_OK(used);
  EXPECT_EQ(used->used_by_host, "host-1");
  EXPECT_EQ(used->used_ms, 1'999);
  STORE_ASSERT_CODE(store_->consume_join_token(kHashA, "host-2", 1'999), ErrorCode::conflict);
  STORE_ASSERT_CODE(store_->consume_join_token(kHashB, "host-2", 1), ErrorCode::not_found);
  STORE_ASSERT_CODE(store_->create_join_token(j), ErrorCode::already_exists);

  JoinTokenRecord forever;
  forever.secret_hash = kHashB;
  STORE_ASSERT_OK(store_->create_join_token(forever));
  // Two hosts race for one token: exactly one gets it.
  std::atomic<int> wins{0};
  std::thread t1([&] { wins += store_->consume_join_token(kHashB, "a", 5).has_value(); });
  std::thread t2([&] { wins += store_->consume_join_token(kHashB, "b", 5).has_value(); });
  t1.join();
  t2.join();
  EXPECT_EQ(wins.load(), 1);
  auto list = store_->list_join_tokens();
  STORE_ASSERT_OK(list);
  EXPECT_EQ(list->size(), 2u);
  STORE_ASSERT_OK(store_->delete_join_token(made->id));
  STORE_ASSERT_CODE(store_->get_join_token_by_hash(kHashA), ErrorCode::not_found);
}

TEST_P(StoreContractTest, MetricsKeepOnlyTheNewestSamplesPerHost) {
  HostRecord h1, h2;
  h1.name = "m1";
  h2.name = "m2";
  auto a = store_->create_host(h1);
  auto b = store_->create_host(h2);
  STORE_ASSERT_OK(a);
  STORE_ASSERT_OK(b);
  for (int i = 1; i <= 25; ++i) {
    STORE_ASSERT_OK(
        store_->append_host_metric({a->id, 1000 + i, R"({"cpu":)" + std::to_string(i) + "}"}, 10));
  }
  for (int i = 1; i <= 3; ++i) {
    STORE_ASSERT_OK(store_->append_host_metric({b->id, 500 + i, "{}"}, 10));
  }
  auto kept = store_->list_host_metrics(a->id, 0);
  STORE_ASSERT_OK(kept);
  ASSERT_EQ(kept->size(), 10u);
  EXPECT_EQ(kept->front().time_ms, 1016);
  EXPECT_EQ(kept->back().time_ms, 1025);
  EXPECT_EQ(kept->back().data, R"({"cpu":25})");
  auto recent = store_->list_host_metrics(a->id, 3);
  STORE_ASSERT_OK(recent);
  ASSERT_EQ(recent->size(), 3u);
  EXPECT_EQ(recent->front().time_ms, 1023);
  EXPECT_EQ(store_->list_host_metrics(b->id, 0)->size(), 3u);

  STORE_ASSERT_CODE(store_->append_host_metric({"no-such-host", 1, "{}"}, 10),
                    ErrorCode::failed_precondition);
  STORE_ASSERT_CODE(store_->append_host_metric({a->id, 1, "{}"}, 0), ErrorCode::invalid_argument);
  STORE_ASSERT_OK(store_->delete_host(a->id, std::nullopt));
  EXPECT_TRUE(store_->list_host_metrics(a->id, 0)->empty());
}

TEST_P(StoreContractTest, TransactionCommitsAllOrNothing) {
  auto ok = store_->transaction([](Store& tx) -> Status {
    HostRecord h;
    h.name = "tx-host";
    auto host = tx.create_host(h);
    if (!host) return tl::unexpected(host.error());
    VmRecord v;
    v.name = "tx-vm";
    v.host_id = host->id;
    if (auto r = tx.create_vm(v); !r) return tl::unexpected(r.error());
    EventRecord e;
    e.action = "vm.create";
    if (auto r = tx.append_event(e); !r) return tl::unexpected(r.error());
    return tx.transaction([](Store& inner) -> Status {  // nested joins the outer one
      auto got = inner.get_vm_by_name("tx-vm");
      if (!got) return tl::unexpected(got.error());
      return {};
    });
  });
  STORE_ASSERT_OK(ok);
  STORE_ASSERT_OK(store_->get_vm_by_name("tx-vm"));
  EXPECT_EQ(store_->list_events(0, 0)->size(), 1u);

  auto failed = store_->transaction([](Store& tx) -> Status {
    HostRecord h;
    h.name = "doomed";
    if (auto r = tx.create_host(h); !r) return tl::unexpected(r.error());
    EventRecord e;
    e.action = "host.create";
    if (auto r = tx.append_event(e); !r) return tl::unexpected(r.error());
    return make_error(ErrorCode::failed_precondition, "changed my mind");
  });
  STORE_ASSERT_CODE(failed, ErrorCode::failed_precondition);
  STORE_ASSERT_CODE(store_->get_host_by_name("doomed"), ErrorCode::not_found);
  EXPECT_EQ(store_->list_events(0, 0)->size(), 1u);

  // A constraint error inside rolls back everything before it too.
  auto dup = store_->transaction([](Store& tx) -> Status {
    HostRecord h;
    h.name = "first-in-tx";
    if (auto r = tx.create_host(h); !r) return tl::unexpected(r.error());
    h.name = "tx-host";  // exists
    if (auto r = tx.create_host(h); !r) return tl::unexpected(r.error());
    return {};
  });
  STORE_ASSERT_CODE(dup, ErrorCode::already_exists);
  STORE_ASSERT_CODE(store_->get_host_by_name("first-in-tx"), ErrorCode::not_found);

  // A failed statement poisons the transaction even when fn ignores the error: later
  // statements fail and nothing commits (PostgreSQL semantics, on every backend).
  bool later_failed = false;
  auto swallowed = store_->transaction([&](Store& tx) -> Status {
    (void)tx.create_host(host_named("kept?"));
    (void)tx.create_host(host_named("tx-host"));  // already_exists, ignored
    later_failed = !tx.create_host(host_named("after-error")).has_value();
    return {};
  });
  STORE_ASSERT_CODE(swallowed, ErrorCode::already_exists);
  EXPECT_TRUE(later_failed);
  STORE_ASSERT_CODE(store_->get_host_by_name("kept?"), ErrorCode::not_found);
  STORE_ASSERT_CODE(store_->get_host_by_name("after-error"), ErrorCode::not_found);
  STORE_ASSERT_OK(store_->get_host_by_name("tx-host"));
}

TEST_P(StoreContractTest, TransactionRetryingRerunsALostCompareAndSwapFromScratch) {
  // A run that loses its compare-and-swap rolls back whole; the next run starts over.
  int runs = 0;
  auto st = store_->transaction_retrying([&](Store& tx) -> Status {
    ++runs;
    if (auto r = tx.create_host(host_named("run-" + std::to_string(runs))); !r)
      return tl::unexpected(r.error());
    if (runs < 3) return make_error(ErrorCode::conflict, "lost the race");
    return {};
  });
  STORE_ASSERT_OK(st);
  EXPECT_EQ(runs, 3);
  STORE_ASSERT_CODE(store_->get_host_by_name("run-1"), ErrorCode::not_found);
  STORE_ASSERT_CODE(store_->get_host_by_name("run-2"), ErrorCode::not_found);
  STORE_ASSERT_OK(store_->get_host_by_name("run-3"));

  // Other errors are not retried; a conflict that persists is returned after `attempts`.
  runs = 0;
  auto other = store_->transaction_retrying([&](Store&) -> Status {
    ++runs;
    return make_error(ErrorCode::failed_precondition, "no");
  });
  STORE_ASSERT_CODE(other, ErrorCode::failed_precondition);
  EXPECT_EQ(runs, 1);
  runs = 0;
  auto stale = store_->transaction_retrying(
      [&](Store&) -> Status {
        ++runs;
        return make_error(ErrorCode::conflict, "resource_version is 7, not 6");
      },
      4);
  STORE_ASSERT_CODE(stale, ErrorCode::conflict);
  EXPECT_EQ(runs, 4);

  // Nested in a transaction it runs once: the outer one's writes cannot roll back alone.
  runs = 0;
  auto nested = store_->transaction([&](Store& tx) -> Status {
    return tx.transaction_retrying([&](Store&) -> Status {
      ++runs;
      return make_error(ErrorCode::conflict, "lost");
    });
  });
  STORE_ASSERT_CODE(nested, ErrorCode::conflict);
  EXPECT_EQ(runs, 1);
}

TEST_P(StoreContractTest, TransactionRetryingLandsRacingReadModifyWrites) {
  // Four writers each count 25 times up in one VM's label by read-modify-write, naming no version
  // (like PATCH without If-Match). On PostgreSQL the compare-and-swap loses whenever
  // another writer commits between the read and the update; every write must still land.
  STORE_ASSERT_OK(store_->create_vm(vm_named("contended")));
  constexpr int kWriters = 4, kEach = 25;
  std::atomic<int> failures{0}, runs{0};
  std::vector<std::thread> writers;
  for (int w = 0; w < kWriters; ++w)
    writers.emplace_back([&] {
      for (int i = 0; i < kEach; ++i) {
        auto st = store_->transaction_retrying(
            [&](Store& tx) -> Status {
              ++runs;
              auto vm = tx.get_vm_by_name("contended");
              if (!vm) return tl::unexpected(vm.error());
              const auto it = vm->labels.find("count");
              const int count = it == vm->labels.end() ? 0 : std::stoi(it->second);
              vm->labels["count"] = std::to_string(count + 1);
              if (auto u = tx.update_vm(*vm); !u) return tl::unexpected(u.error());
              return {};
            },
            100);
        if (!st) ++failures;
      }
    });
  for (auto& t : writers) t.join();
  EXPECT_EQ(failures.load(), 0);
  auto vm = store_->get_vm_by_name("contended");
  STORE_ASSERT_OK(vm);
  EXPECT_EQ(vm->labels["count"], std::to_string(kWriters * kEach));  // no update lost
  EXPECT_EQ(vm->resource_version, 1 + kWriters * kEach);
  std::printf("%s: %d runs for %d writes\n", GetParam()->name().c_str(), runs.load(),
              kWriters * kEach);
}

TEST_P(StoreContractTest, MigrationsAreIdempotentAcrossReopen) {
  auto v1 = store_->schema_version();
  STORE_ASSERT_OK(v1);
  EXPECT_GE(*v1, 1);
  STORE_ASSERT_OK(store_->create_vm(vm_named("survivor")));
  store_.reset();
  StorePtr again = reopen();
  ASSERT_NE(again, nullptr);
  StorePtr third = reopen();  // two managers open the same database
  ASSERT_NE(third, nullptr);
  EXPECT_EQ(*again->schema_version(), *v1);
  EXPECT_EQ(*third->schema_version(), *v1);
  STORE_ASSERT_OK(again->get_vm_by_name("survivor"));
  STORE_ASSERT_OK(third->ping());
  EXPECT_EQ(again->backend(), GetParam()->name());
}

TEST_P(StoreContractTest, HostileNamesAreStoredLiterally) {
  const std::vector<std::string> names = {
      "x'); DROP TABLE vms; --",
      "Robert'); DROP TABLE hosts;--",
      "\" OR 1=1 --",
      "$1 ?1 ? :name @p",
      "back\\slash\nnew line\ttab",
      "ünïcødé-名前",
      "%_wild%",
  };
  for (const auto& n : names) {
    VmRecord v;
    v.name = n;
    v.labels = {{n, n}};
    STORE_ASSERT_OK(store_->create_vm(v));
    HostRecord h;
    h.name = n;
    STORE_ASSERT_OK(store_->create_host(h));
  }
  for (const auto& n : names) {
    auto v = store_->get_vm_by_name(n);
    STORE_ASSERT_OK(v);
    EXPECT_EQ(v->name, n);
    EXPECT_EQ(v->labels.at(n), n);
    VmListOptions sel;
    sel.label_selector = {{n, n}};
    EXPECT_EQ(store_->list_vms(sel)->size(), 1u);
  }
  STORE_ASSERT_CODE(store_->get_vm_by_name("%"), ErrorCode::not_found);
  STORE_ASSERT_CODE(store_->get_vm_by_name("' OR '1'='1"), ErrorCode::not_found);
  EXPECT_EQ(store_->list_vms({})->size(), names.size());
  EXPECT_EQ(store_->list_hosts({})->size(), names.size());
}

TEST_P(StoreContractTest, TenThousandVmsListAndGet) {
  constexpr int kVms = 10'000;
  auto host = store_->create_host(host_named("big"));
  STORE_ASSERT_OK(host);
  auto t0 = std::chrono::steady_clock::now();
  auto st = store_->transaction([&](Store& tx) -> Status {
    for (int i = 0; i < kVms; ++i) {
      VmRecord v;
      v.name = "vm-" + std::to_string(i);
      if (i % 100 == 0) v.host_id = host->id;
      if (auto r = tx.create_vm(v); !r) return tl::unexpected(r.error());
    }
    return {};
  });
  STORE_ASSERT_OK(st);
  auto t1 = std::chrono::steady_clock::now();
  for (int i = 0; i < 1000; ++i) {
    auto v = store_->get_vm_by_name("vm-" + std::to_string((i * 7919) % kVms));
    STORE_ASSERT_OK(v);
  }
  auto t2 = std::chrono::steady_clock::now();
  VmListOptions on_host;
  on_host.host_id = host->id;
  auto placed = store_->list_vms(on_host);
  STORE_ASSERT_OK(placed);
  EXPECT_EQ(placed->size(), static_cast<size_t>(kVms / 100));
  auto t3 = std::chrono::steady_clock::now();
  size_t total = 0;
  VmListOptions page;
  page.limit = 500;
  for (;;) {
    auto r = store_->list_vms(page);
    STORE_ASSERT_OK(r);
    total += r->size();
    if (r->size() < 500) break;
    page.after_id = r->back().id;
  }
  auto t4 = std::chrono::steady_clock::now();
  EXPECT_EQ(total, static_cast<size_t>(kVms));
  auto sum = store_->summarize(10);
  STORE_ASSERT_OK(sum);
  EXPECT_EQ(sum->vms, kVms);
  EXPECT_EQ(sum->vms_unplaced, kVms - kVms / 100);
  auto t5 = std::chrono::steady_clock::now();
  auto ms = [](auto a, auto b) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(b - a).count();
  };
  // Informational only (timings on shared machines are noisy; no assertion).
  std::printf(
      "[%s] insert %d VMs: %lld ms; 1000 get_by_name: %lld ms; list by host: %lld ms; "
      "full paged list: %lld ms; summarize: %lld ms\n",
      GetParam()->name().c_str(), kVms, static_cast<long long>(ms(t0, t1)),
      static_cast<long long>(ms(t1, t2)), static_cast<long long>(ms(t2, t3)),
      static_cast<long long>(ms(t3, t4)), static_cast<long long>(ms(t4, t5)));
}

// The dashboard's counts come from the database: VMs by observed status.state (malformed
// or stateless status counted under ""), deleting and unplaced VMs, tasks by state, the
// newest tasks and the newest failed ones, newest first.
TEST_P(StoreContractTest, SummarizeCountsByStateInTheDatabase) {
  auto empty = store_->summarize(5);
  STORE_ASSERT_OK(empty);
  EXPECT_EQ(empty->vms, 0);
  EXPECT_TRUE(empty->vms_by_state.empty());
  EXPECT_TRUE(empty->recent_tasks.empty());
  auto host = store_->create_host(host_named("h"));
  STORE_ASSERT_OK(host);
  const std::vector<std::pair<std::string, std::string>> statuses = {
      {"r1", R"({"state":"running","addresses":[{"state":"x"}]})"},
      {"r2", R"({"state":"running"})"},
      {"s1", R"({"state":"stopped"})"},
      {"n1", "{}"},
      {"bad", "not json {"},
      {"arr", "[1,2]"},
      {"num", R"({"state":5})"},
      {"nested", R"({"migration":{"state":"running"}})"}};
  for (const auto& [name, status] : statuses) {
    VmRecord v = vm_named(name);
    v.status = status;
    if (name[0] == 'r' || name[0] == 's') v.host_id = host->id;
    v.deletion_requested = name == "s1";
    STORE_ASSERT_OK(store_->create_vm(v));
  }
  std::vector<std::string> ids;
  for (const char* state : {"succeeded", "failed", "running", "failed", "pending", "running"}) {
    TaskRecord t;
    t.kind = "vm.create";
    t.state = state;
    auto made = store_->create_task(t);
    STORE_ASSERT_OK(made);
    ids.push_back(made->id);
    clock_->advance(std::chrono::milliseconds(1));
  }
  auto s = store_->summarize(3);
  STORE_ASSERT_OK(s);
  EXPECT_EQ(s->vms, 8);
  EXPECT_EQ(s->vms_by_state, (std::map<std::string, int64_t>{{"", 5}, {"running", 2}, {"stopped", 1}}));
  EXPECT_EQ(s->vms_deleting, 1);
  EXPECT_EQ(s->vms_unplaced, 5);
  EXPECT_EQ(s->tasks_by_state,
            (std::map<std::string, int64_t>{{"failed", 2}, {"pending", 1}, {"running", 2}, {"succeeded", 1}}));
  ASSERT_EQ(s->recent_tasks.size(), 3u);
  EXPECT_EQ(s->recent_tasks[0].id, ids[5]);
  EXPECT_EQ(s->recent_tasks[2].id, ids[3]);
  ASSERT_EQ(s->failed_tasks.size(), 2u);
  EXPECT_EQ(s->failed_tasks[0].id, ids[3]);
  EXPECT_EQ(s->failed_tasks[1].id, ids[1]);
  auto none = store_->summarize(0);
  STORE_ASSERT_OK(none);
  EXPECT_TRUE(none->recent_tasks.empty());
  EXPECT_EQ(none->vms, 8);
  STORE_ASSERT_CODE(store_->summarize(-1), ErrorCode::invalid_argument);
}

}  // namespace
}  // namespace strata::store::testing
