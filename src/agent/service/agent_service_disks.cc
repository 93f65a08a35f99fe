// AgentService: a stopped VM's local disk for a cold migration (ReadDisk, server streaming;
// WriteDisk, client streaming). The manager relays the chunks from the source's ReadDisk
// to the target's WriteDisk; the two agents check the stream end to end with a digest over
// every extent's offset, length and data, so a chunk lost, reordered or changed on the way
// fails the copy before the file replaces the target's disk
// (docs/internals/migration.md, "Cold migration").
#include <fmt/format.h>

#include "strata/agent/service/agent_service.h"
#include "strata/common/log.h"
#include "strata/common/sha256.h"
#include "strata/model/validation.h"
#include "strata/wire/status.h"

namespace strata::agent::service {

namespace {

// At most this many data bytes per message (gRPC's default limit is 4 MiB a message).
constexpr size_t kDiskExtentBytes = 1 << 20;

void digest_extent(Sha256& d, uint64_t offset, std::string_view data) {
  unsigned char le[16];
  const uint64_t len = data.size();
  for (int i = 0; i < 8; ++i) {
    le[i] = static_cast<unsigned char>(offset >> (8 * i));
    le[8 + i] = static_cast<unsigned char>(len >> (8 * i));
  }
  d.update(le, sizeof le);
  d.update(data);
}

}  // namespace

grpc::Status AgentService::ReadDisk(grpc::ServerContext* ctx, const v1::ReadDiskRequest* req,
                                    grpc::ServerWriter<v1::DiskChunk>* writer) {
  auto run = [&]() -> Status {
    if (auto st = model::validate_name("name", req->name()); !st) return st;
    if (auto st = model::validate_name("disk", req->disk()); !st) return st;
    Sha256 digest;
    uint64_t sent = 0;
    auto gone = [&] {
      return make_error(ErrorCode::unavailable, "the reader of disk " + req->name() + "/" +
                                                    req->disk() + " went away");
    };
    auto st = hv_.export_disk(
        req->name(), req->disk(), kDiskExtentBytes,
        [&](const Hypervisor::DiskFileHeader& h) -> Status {
          v1::DiskChunk c;
          auto* out = c.mutable_header();
          out->set_name(req->name());
          out->set_disk(req->disk());
          out->set_format(h.format);
          out->set_file_size(h.file_size);
          out->set_base_image(h.base_image);
          if (!writer->Write(c)) return gone();
          return {};
        },
        [&](uint64_t offset, std::string_view data) -> Status {
          if (ctx->IsCancelled()) return gone();
          digest_extent(digest, offset, data);
          v1::DiskChunk c;
          c.set_offset(offset);
          c.set_data(data.data(), data.size());
          if (!writer->Write(c)) return gone();
          sent += data.size();
          return {};
        });
    if (!st) return st;
    v1::DiskChunk last;
    last.set_sha256(digest.hex_final());
    if (!writer->Write(last)) return gone();
    logger("agent.disks")->info("disk sent vm={} disk={} bytes={}", req->name(), req->disk(), sent);
    return {};
  };
  auto st = run();
  if (!st) return wire::to_grpc_status(st.error());
  return grpc::Status::OK;
}

grpc::Status AgentService::WriteDisk(grpc::ServerContext*, grpc::ServerReader<v1::DiskChunk>* reader,
                                     v1::WriteDiskResponse* resp) {
  auto run = [&]() -> Status {
    v1::DiskChunk chunk;
    if (!reader->Read(&chunk) || !chunk.has_header())
      return invalid_argument("header", "the first message must carry the disk header");
    const v1::DiskHeader h = chunk.header();
    if (auto st = model::validate_name("name", h.name()); !st) return st;
    if (auto st = model::validate_name("disk", h.disk()); !st) return st;
    if (!h.base_image().empty())
      if (auto st = model::validate_image_name("base_image", h.base_image()); !st) return st;
    Sha256 digest;
    bool ended = false;
    auto next = [&]() -> Result<std::optional<ImageStore::DiskExtent>> {
      chunk.Clear();
      if (!reader->Read(&chunk))
        return make_error(ErrorCode::unavailable,
                          "the disk's stream ended before its digest (the sender went away?)");
      if (chunk.has_header())
        return invalid_argument("header", "only the first message may carry the header");
      if (!chunk.sha256().empty()) {
        if (!chunk.data().empty())
          return invalid_argument("sha256", "the digest comes in a message of its own");
        std::string got = digest.hex_final();
        if (got != chunk.sha256())
          return invalid_argument("sha256", fmt::format("the disk's extents hash to {}, the "
                                                        "sender's to {}",
                                                        got, chunk.sha256()));
        ended = true;
        return std::optional<ImageStore::DiskExtent>();
      }
      if (chunk.data().size() > kDiskExtentBytes)
        return invalid_argument("data", fmt::format("an extent of {} bytes (at most {})",
                                                    chunk.data().size(), kDiskExtentBytes));
      digest_extent(digest, chunk.offset(), chunk.data());
      ImageStore::DiskExtent e;
      e.offset = chunk.offset();
      e.data = std::move(*chunk.mutable_data());
      return std::optional<ImageStore::DiskExtent>(std::move(e));
    };
    auto written = hv_.import_disk(h.name(), h.disk(),
                                   Hypervisor::DiskFileHeader{h.format(), h.file_size(),
                                                              h.base_image()},
                                   next);
    if (!written) return tl::unexpected(written.error());
    if (!ended) return internal_error("the disk was placed before its digest was checked");
    resp->set_bytes_written(*written);
    return {};
  };
  auto st = run();
  if (!st) return wire::to_grpc_status(st.error());
  return grpc::Status::OK;
}

}  // namespace strata::agent::service
