// A throwaway PostgreSQL 15 cluster for tests: initdb + pg_ctl as user postgres in a temp
// folder, UNIX socket only (no TCP), fsync off. Stopped and removed on destruction.
#pragma once

#include <memory>
#include <string>

#include "strata/common/error.h"

namespace strata::store::testing {

class PgCluster {
 public:
  // failed_precondition with the reason when this machine cannot run one (not root,
  // binaries or the postgres user missing); other errors when startup failed.
  static Result<std::unique_ptr<PgCluster>> start();
  ~PgCluster();
  PgCluster(const PgCluster&) = delete;
  PgCluster& operator=(const PgCluster&) = delete;

  // libpq URI for database `db` on this cluster.
  std::string url(const std::string& db) const;
  // Creates a new empty database and returns its URI.
  Result<std::string> create_database();
  // Stops the server (fast) and starts it again on the same socket and port: every
  // existing client connection is broken.
  Status restart();
  // Adds login role `role` (superuser, so it can run the migrations) with `password`, and
  // makes the server ask it for that password (scram-sha-256; other roles keep trust).
  // `role` and `password` are the test's own constants ([a-z0-9]), never input.
  Status add_password_role(const std::string& role, const std::string& password);

 private:
  PgCluster(std::string dir, int port) : dir_(std::move(dir)), port_(port) {}
  Status pg_ctl(const std::vector<std::string>& args);

  std::string dir_;
  int port_;
  int next_db_ = 0;
  bool running_ = false;
};

}  // namespace strata::store::testing
