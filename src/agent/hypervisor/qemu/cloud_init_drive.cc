// Builds a VM's NoCloud seed image: the rendered documents go to <vm_dir>/cloud-init/,
// cloud-localds (argv, no shell; the paths are ours) packs them into <vm_dir>/cidata.iso.
#include "cloud_init_drive.h"

#include <filesystem>

#include "strata/common/atomic_file.h"
#include "strata/common/log.h"
#include "strata/common/process.h"
#include "strata/model/cloud_init_seed.h"

namespace strata::agent::qemu {

namespace fs = std::filesystem;

Result<std::string> build_cloud_init_seed(const std::string& vm_dir, const model::VmSpec& spec,
                                          const std::string& tool) {
  auto seed = model::render_cloud_init_seed(spec);
  if (!seed) return tl::unexpected(seed.error());
  const std::string dir = vm_dir + "/cloud-init";
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return internal_error("mkdir " + dir + ": " + ec.message());
  // The user-data may hold password hashes: readable by root only.
  if (auto s = write_file_atomic(dir + "/meta-data", seed->meta_data, 0600); !s)
    return tl::unexpected(s.error());
  if (auto s = write_file_atomic(dir + "/user-data", seed->user_data, 0600); !s)
    return tl::unexpected(s.error());
  std::vector<std::string> argv{tool};
  const std::string net = dir + "/network-config";
  fs::remove(net, ec);
  if (!seed->network_config.empty()) {
    if (auto s = write_file_atomic(net, seed->network_config, 0600); !s)
      return tl::unexpected(s.error());
    argv.push_back("--network-config=" + net);
  }
  const std::string out = vm_dir + "/" + kCloudInitSeedFile;
  const std::string tmp = out + ".tmp";
  fs::remove(tmp, ec);
  argv.insert(argv.end(), {tmp, dir + "/user-data", dir + "/meta-data"});
  RunOptions ro;
  ro.timeout = std::chrono::seconds(60);
  auto r = run_process(argv, ro);
  if (!r) return tl::unexpected(r.error().wrap("cloud-localds (package cloud-image-utils)"));
  if (!r->ok()) {
    fs::remove(tmp, ec);
    return make_error(ErrorCode::internal, "cloud-localds failed (exit " +
                                               std::to_string(r->exit_code) +
                                               "): " + r->err.substr(0, 500));
  }
  fs::rename(tmp, out, ec);
  if (ec) return internal_error("rename " + tmp + ": " + ec.message());
  logger("agent.qemu")
      ->info("cloud-init seed built vm={} instance_id={} network_config={}", spec.name, spec.uuid,
             !seed->network_config.empty());
  return out;
}

}  // namespace strata::agent::qemu
