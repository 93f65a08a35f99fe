// The manager's parts behind the REST API, on an in-memory SQLite store and without agents:
// what the API tests build instead of a whole stratad. deps() wires them as manager.cc does.
#pragma once

#include <gtest/gtest.h>

#include <stdlib.h>

#include <filesystem>
#include <memory>
#include <string>

#include "strata/backup/repository.h"
#include "strata/manager/agents/connection_manager.h"
#include "strata/manager/api/api_service.h"
#include "strata/manager/auth/tokens.h"
#include "strata/manager/controllers/vm_controller.h"
#include "strata/manager/tasks/task_tracker.h"
#include "strata/manager/vms/backup_schedules.h"
#include "strata/manager/vms/backup_service.h"
#include "strata/manager/vms/balancer.h"
#include "strata/manager/vms/vm_import.h"
#include "strata/manager/vms/vm_service.h"

namespace strata::manager::test_support {

struct ManagerParts {
  ClockPtr clock = system_clock();
  store::StorePtr store;
  std::string admin;  // the first admin token
  std::unique_ptr<EventLog> events;
  std::unique_ptr<TaskTracker> tasks;
  std::unique_ptr<TokenAuthenticator> auth;
  std::unique_ptr<ConnectionManager> agents;
  std::unique_ptr<PlacementService> placement;
  std::unique_ptr<ClusterService> clusters;
  std::unique_ptr<VmController> controller;
  std::unique_ptr<VmService> vms;
  // Backups into a repository in a temp folder (removed with the parts).
  std::string backup_repo;
  std::unique_ptr<BackupService> backups;
  std::unique_ptr<BackupScheduler> backup_schedules;  // not started: tests call tick()
  std::unique_ptr<Balancer> balancer;  // not started: its cycles run only when a test calls tick()
  // An image catalog in a temp folder (removed with the parts) and the VM importer on it.
  std::string catalog_dir;
  std::unique_ptr<ImageDistributor> images;
  std::unique_ptr<VmImporter> importer;

  // Builds every part; a failure is a fatal gtest failure (call through ASSERT_NO_FATAL_FAILURE).
  void build() {
    auto s = store::open_store("sqlite::memory:", store::StoreOptions{clock, 1});
    ASSERT_TRUE(s) << s.error().to_string();
    store = std::move(*s);
    auto token = bootstrap_admin_token(*store, "admin");
    ASSERT_TRUE(token && *token);
    admin = **token;
    events = std::make_unique<EventLog>(*store);
    tasks = std::make_unique<TaskTracker>(*store);
    auth = std::make_unique<TokenAuthenticator>(*store, clock);
    agents = std::make_unique<ConnectionManager>(*store, *events, clock, ConnectionConfig{});
    auto scheduler = sched::Scheduler::create({});
    ASSERT_TRUE(scheduler);
    placement = std::make_unique<PlacementService>(*store, std::move(*scheduler));
    clusters = std::make_unique<ClusterService>(*store, *events, clock);
    ASSERT_TRUE(clusters->ensure_default());
    controller = std::make_unique<VmController>(*store, *agents, *tasks, *events, *placement, clock,
                                                ControllerConfig{});
    controller->set_clusters(clusters.get());
    vms = std::make_unique<VmService>(*store, *placement, *events, clock,
                                      [c = controller.get()](const std::string& id) {
                                        c->enqueue_vm(id);
                                      });
    vms->set_agents([a = agents.get()](const std::string& host_id) { return a->client(host_id); });
    balancer = std::make_unique<Balancer>(*vms, *events, clock);
    char tmpl[] = "/tmp/strata-api-backups-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    backup_repo = tmpl;
    auto repo = backup::Repository::open(backup_repo);
    ASSERT_TRUE(repo) << repo.error().to_string();
    backups = std::make_unique<BackupService>(
        *store, *events, clock,
        [a = agents.get()](const std::string& host_id) { return a->client(host_id); },
        std::move(*repo));
    backup_schedules = std::make_unique<BackupScheduler>(*store, *events, clock, *backups);
    char ctmpl[] = "/tmp/strata-api-catalog-XXXXXX";
    ASSERT_NE(::mkdtemp(ctmpl), nullptr);
    catalog_dir = ctmpl;
    std::filesystem::create_directories(catalog_dir + "/uploads");
    images = std::make_unique<ImageDistributor>(*store, catalog_dir);
    importer = std::make_unique<VmImporter>(*store, *images, *vms, catalog_dir + "/uploads");
    importer->set_tasks(tasks.get());
  }
  ~ManagerParts() {
    backup_schedules.reset();
    backups.reset();
    if (!backup_repo.empty()) std::filesystem::remove_all(backup_repo);
    importer.reset();
    images.reset();
    if (!catalog_dir.empty()) std::filesystem::remove_all(catalog_dir);
  }

  ApiDeps deps() const {
    ApiDeps d;
    d.store = store.get();
    d.auth = auth.get();
    d.events = events.get();
    d.tasks = tasks.get();
    d.agents = agents.get();
    d.controller = controller.get();
    d.placement = placement.get();
    d.clusters = clusters.get();
    d.vms = vms.get();
    d.balancer = balancer.get();
    d.backups = backups.get();
    d.backup_schedules = backup_schedules.get();
    d.images = images.get();
    d.importer = importer.get();
    d.clock = clock;
    return d;
  }
};

}  // namespace strata::manager::test_support
