// Throwaway PostgreSQL cluster for the pg-labelled store tests (see pg_cluster.h).
#include "pg_cluster.h"

#include <libpq-fe.h>
#include <pwd.h>
#include <unistd.h>

#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "strata/common/process.h"

namespace strata::store::testing {

namespace {
const std::string kBin = "/usr/lib/postgresql/15/bin";

Result<std::string> run_as_postgres(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"runuser", "-u", "postgres", "--"};
  argv.insert(argv.end(), args.begin(), args.end());
  RunOptions opts;
  opts.timeout = std::chrono::seconds(60);
  return run_checked(argv, opts);
}
}  // namespace

Result<std::unique_ptr<PgCluster>> PgCluster::start() {
  if (geteuid() != 0) {
    return make_error(ErrorCode::failed_precondition,
                      "not root: initdb must run as user postgres via runuser");
  }
  if (access((kBin + "/initdb").c_str(), X_OK) != 0 ||
      access((kBin + "/pg_ctl").c_str(), X_OK) != 0) {
    return make_error(ErrorCode::failed_precondition, "PostgreSQL 15 binaries missing in " + kBin);
  }
  struct passwd* pw = getpwnam("postgres");
  if (!pw) return make_error(ErrorCode::failed_precondition, "no postgres user");
  if (find_executable("runuser").empty()) {
    return make_error(ErrorCode::failed_precondition, "runuser missing");
  }
  std::string tmpl = "/tmp/strata-pg-XXXXXX";
  if (!mkdtemp(tmpl.data())) return internal_error("mkdtemp failed");
  if (chown(tmpl.c_str(), pw->pw_uid, pw->pw_gid) != 0) {
    std::filesystem::remove_all(tmpl);
    return internal_error("chown " + tmpl + " failed");
  }
  std::random_device rd;
  int port = 20000 + static_cast<int>(rd() % 40000);  // names the socket file only
  std::unique_ptr<PgCluster> c(new PgCluster(tmpl, port));
  auto init = run_as_postgres(
      {kBin + "/initdb", "-D", tmpl + "/data", "-A", "trust", "-U", "strata", "--no-sync"});
  if (!init) return tl::unexpected(init.error().wrap("initdb"));
  if (auto st = c->pg_ctl({"start", "-w"}); !st) return tl::unexpected(st.error());
  c->running_ = true;
  return c;
}

Status PgCluster::pg_ctl(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {kBin + "/pg_ctl", "-D", dir_ + "/data", "-l", dir_ + "/log"};
  argv.insert(argv.end(), args.begin(), args.end());
  if (args.front() == "start" || args.front() == "restart") {
    argv.push_back("-o");
    argv.push_back("-k " + dir_ + " -p " + std::to_string(port_) +
                   " -c listen_addresses='' -c fsync=off -c synchronous_commit=off"
                   " -c full_page_writes=off -c max_connections=50");
  }
  auto r = run_as_postgres(argv);
  if (!r) return tl::unexpected(r.error().wrap("pg_ctl " + args.front()));
  return {};
}

PgCluster::~PgCluster() {
  if (running_) (void)pg_ctl({"stop", "-m", "immediate", "-w"});
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

std::string PgCluster::url(const std::string& db) const {
  return "postgresql://strata@/" + db + "?host=" + dir_ + "&port=" + std::to_string(port_);
}

Result<std::string> PgCluster::create_database() {
  std::string name = "t" + std::to_string(++next_db_);
  PGconn* raw = PQconnectdb(url("postgres").c_str());
  std::unique_ptr<PGconn, void (*)(PGconn*)> conn(raw, PQfinish);
  if (PQstatus(raw) != CONNECTION_OK) return unavailable(PQerrorMessage(raw));
  // The name is generated here ("t<N>"), never from input; CREATE DATABASE takes no
  // parameters.
  PGresult* res = PQexec(raw, ("CREATE DATABASE " + name).c_str());
  bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
  std::string err = PQresultErrorMessage(res);
  PQclear(res);
  if (!ok) return internal_error("create database: " + err);
  return url(name);
}

Status PgCluster::restart() { return pg_ctl({"restart", "-m", "fast", "-w"}); }

Status PgCluster::add_password_role(const std::string& role, const std::string& password) {
  for (const std::string* s : {&role, &password})
    for (char ch : *s)
      if (!std::isalnum(static_cast<unsigned char>(ch)))
        return invalid_argument("role", "test roles and passwords are [a-z0-9]");
  PGconn* raw = PQconnectdb(url("postgres").c_str());
  std::unique_ptr<PGconn, void (*)(PGconn*)> conn(raw, PQfinish);
  if (PQstatus(raw) != CONNECTION_OK) return unavailable(PQerrorMessage(raw));
  PGresult* res = PQexec(raw, ("CREATE ROLE " + role + " LOGIN SUPERUSER PASSWORD '" +
                               password + "'").c_str());
  bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
  std::string err = PQresultErrorMessage(res);
  PQclear(res);
  if (!ok) return internal_error("create role: " + err);
  // pg_hba.conf: the first matching line wins, so this one goes first.
  std::string hba = dir_ + "/data/pg_hba.conf";
  std::ifstream in(hba);
  std::stringstream rest;
  rest << in.rdbuf();
  std::ofstream(hba, std::ios::trunc) << "local all " << role << " scram-sha-256\n"
                                      << rest.str();
  return pg_ctl({"reload"});
}

}  // namespace strata::store::testing
