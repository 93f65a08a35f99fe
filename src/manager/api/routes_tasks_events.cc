// Tasks (read-only) and the event/audit log: paging and a server-sent-events stream fed by
// the one event fan-out (no store query per stream per event), capped per token and overall.
#include <algorithm>

#include "strata/manager/api/api_service.h"
#include "strata/manager/api/event_stream.h"
#include "strata/manager/tasks/task_tracker.h"

namespace strata::manager {

void add_task_event_routes(ApiService& api) {
  ApiDeps& d = api.deps();
  api.router().add("GET", "/api/v1/tasks", RouteOptions{}, [&d](HttpRequest& r) {
    auto limit = query_int(r, "limit", 100, 1, 10000);
    if (!limit) return error_response(limit.error());
    store::TaskListOptions opts;
    opts.limit = *limit;
    if (auto it = r.query.find("after"); it != r.query.end()) opts.after_id = it->second;
    if (auto it = r.query.find("state"); it != r.query.end()) opts.state = it->second;
    // One resource's tasks (a VM's or host's id), and newest first (the web console's tasks
    // page, VM and host pages); the cursor pages in the same order.
    if (auto it = r.query.find("target_id"); it != r.query.end()) {
      if (it->second.empty() || it->second.size() > 64)
        return error_response(
            Error{ErrorCode::invalid_argument, "1 to 64 characters", "target_id"});
      opts.target_id = it->second;
    }
    if (auto it = r.query.find("order"); it != r.query.end()) {
      if (it->second != "newest" && it->second != "oldest")
        return error_response(
            Error{ErrorCode::invalid_argument, "newest or oldest (the default)", "order"});
      opts.newest_first = it->second == "newest";
    }
    auto list = d.store->list_tasks(opts);
    if (!list) return error_response(list.error());
    nlohmann::json items = nlohmann::json::array();
    for (const auto& t : *list) items.push_back(to_json(t));
    nlohmann::json next = nullptr;
    if (static_cast<int>(list->size()) == opts.limit) next = list->back().id;
    return HttpResponse::json(200, {{"tasks", items}, {"next", next}});
  });
  api.router().add("GET", "/api/v1/tasks/{id}", RouteOptions{}, [&d](HttpRequest& r) {
    auto t = d.store->get_task(r.param("id"));
    if (!t) return error_response(t.error());
    return HttpResponse::json(200, to_json(*t));
  });

  api.router().add("GET", "/api/v1/events", RouteOptions{}, [&d](HttpRequest& r) {
    // One target's events ("vm/web-1", "host/h1"), newest first, paged with before=.
    if (auto t = r.query.find("target"); t != r.query.end()) {
      if (t->second.empty() || t->second.size() > 256)
        return error_response(Error{ErrorCode::invalid_argument, "1 to 256 characters", "target"});
      if (r.query.count("after"))
        return error_response(Error{ErrorCode::invalid_argument,
                                    "with target, page with before (newest first)", "after"});
      auto before = query_int(r, "before", 0, 0, std::numeric_limits<int>::max());
      if (!before) return error_response(before.error());
      auto limit = query_int(r, "limit", 100, 1, 10000);
      if (!limit) return error_response(limit.error());
      auto list = d.store->list_target_events(t->second, *before, *limit);
      if (!list) return error_response(list.error());
      nlohmann::json items = nlohmann::json::array();
      for (const auto& e : *list) items.push_back(to_json(e));
      nlohmann::json next = nullptr;
      if (static_cast<int>(list->size()) == *limit) next = list->back().seq;
      return HttpResponse::json(200, {{"events", items}, {"next", next}});
    }
    // All events, newest first (the web console's events page): before=0 starts at the
    // newest, then the previous answer's next. Read backwards in windows of the log's
    // ascending list (seq has gaps only where retention or a rolled-back write left them).
    if (r.query.count("before")) {
      if (r.query.count("after"))
        return error_response(Error{ErrorCode::invalid_argument,
                                    "before pages newest first, after oldest first", "after"});
      auto before = query_int(r, "before", 0, 0, std::numeric_limits<int>::max());
      if (!before) return error_response(before.error());
      auto limit = query_int(r, "limit", 100, 1, 10000);
      if (!limit) return error_response(limit.error());
      auto last = d.events->last_seq();
      if (!last) return error_response(last.error());
      int64_t hi = *before > 0 ? std::min<int64_t>(*before, *last + 1) : *last + 1;  // exclusive
      nlohmann::json items = nlohmann::json::array();
      int64_t smallest = 0;
      for (int round = 0; round < 16 && hi > 1 && static_cast<int>(items.size()) < *limit;
           ++round) {
        const int need = *limit - static_cast<int>(items.size());
        const int64_t from = std::max<int64_t>(0, hi - 1 - need);
        auto list = d.events->list(from, need);
        if (!list) return error_response(list.error());
        for (auto it = list->rbegin(); it != list->rend(); ++it) {
          if (it->seq >= hi) continue;
          items.push_back(to_json(*it));
          smallest = it->seq;
        }
        hi = from + 1;
      }
      nlohmann::json next = nullptr;
      if (static_cast<int>(items.size()) == *limit && smallest > 1) next = smallest;
      return HttpResponse::json(200, {{"events", items}, {"next", next}});
    }
    auto after = query_int(r, "after", 0, 0, std::numeric_limits<int>::max());
    if (!after) return error_response(after.error());
    auto limit = query_int(r, "limit", 100, 1, 10000);
    if (!limit) return error_response(limit.error());
    auto list = d.events->list(*after, *limit);
    if (!list) return error_response(list.error());
    nlohmann::json items = nlohmann::json::array();
    int64_t next = *after;
    for (const auto& e : *list) {
      items.push_back(to_json(e));
      next = e.seq;
    }
    return HttpResponse::json(200, {{"events", items}, {"next", next}});
  });

  api.router().add("GET", "/api/v1/events/stream", RouteOptions{}, [&d](HttpRequest& r) {
    int64_t after = 0;
    auto last_id = r.header("last-event-id");
    if (r.query.count("after")) {
      auto a = query_int(r, "after", 0, 0, std::numeric_limits<int>::max());
      if (!a) return error_response(a.error());
      after = *a;
    } else if (!last_id.empty()) {
      after = std::atoll(last_id.c_str());
    } else if (auto last = d.events->last_seq()) {
      after = *last;  // live only
    }
    if (!d.fanout) return error_response(Error{ErrorCode::unavailable, "no event log", ""});
    return event_stream_response(*d.fanout, *d.streams, r.principal ? r.principal->token_id : "",
                                 after);
  });
}

}  // namespace strata::manager
