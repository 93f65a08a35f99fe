// vm_import.h: archive -> descriptor -> plan -> converted catalog images -> VM.
// Order, so a refusal leaves nothing behind: everything the descriptor and the names decide
// is checked first; then every disk is extracted, probed and converted into the work
// folder; only when all are good are they committed to the catalog and the VM created
// (a VM create that fails removes the images it would have used).
#include "strata/manager/vms/vm_import.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>

#include "strata/common/log.h"
#include "strata/common/sha256.h"
#include "strata/common/unique_fd.h"
#include "strata/model/validation.h"

namespace strata::manager {

namespace {

// A file in the work folder, removed unless released (committed to the catalog).
struct TempFile {
  std::string path;
  TempFile() = default;
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  TempFile(TempFile&& o) noexcept : path(std::move(o.path)) { o.path.clear(); }
  TempFile& operator=(TempFile&& o) noexcept {
    if (this != &o) {
      if (!path.empty()) ::unlink(path.c_str());
      path = std::move(o.path);
      o.path.clear();
    }
    return *this;
  }
  ~TempFile() {
    if (!path.empty()) ::unlink(path.c_str());
  }
};

Result<TempFile> make_temp(const std::string& dir, const char* what) {
  std::string templ = dir + "/strata-import-" + what + "-XXXXXX";
  int fd = ::mkstemp(templ.data());
  if (fd < 0)
    return internal_error(fmt::format("cannot create a file in {}: {}", dir, std::strerror(errno)));
  ::close(fd);
  TempFile t;
  t.path = templ;
  return t;
}

Status read_exact(int fd, uint64_t offset, void* buf, size_t n) {
  auto* p = static_cast<char*>(buf);
  size_t done = 0;
  while (done < n) {
    ssize_t r = ::pread(fd, p + done, n - done, static_cast<off_t>(offset + done));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return internal_error(std::string("reading the archive: ") + std::strerror(errno));
    if (r == 0) return invalid_argument("body", "the archive ends early (truncated upload?)");
    done += static_cast<size_t>(r);
  }
  return {};
}

// Copies [offset, offset+size) of `in` to the file `out` (in-kernel when it can).
Status copy_range(int in, uint64_t offset, uint64_t size, const std::string& out) {
  UniqueFd o(::open(out.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC));
  if (o.fd < 0) return internal_error("cannot open " + out + ": " + std::strerror(errno));
  loff_t in_off = static_cast<loff_t>(offset);
  uint64_t left = size;
  bool kernel = true;
  std::vector<char> buf;
  while (left > 0) {
    if (kernel) {
      ssize_t n = ::copy_file_range(in, &in_off, o.fd, nullptr,
                                    static_cast<size_t>(std::min<uint64_t>(left, 1ull << 30)), 0);
      if (n > 0) {
        left -= static_cast<uint64_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n == 0) return invalid_argument("body", "the archive ends early (truncated upload?)");
      kernel = false;  // EXDEV, ENOSYS, EINVAL...: plain reads and writes
      buf.resize(1 << 20);
    }
    size_t chunk = static_cast<size_t>(std::min<uint64_t>(left, buf.size()));
    if (auto st = read_exact(in, static_cast<uint64_t>(in_off), buf.data(), chunk); !st) return st;
    size_t w = 0;
    while (w < chunk) {
      ssize_t n = ::write(o.fd, buf.data() + w, chunk - w);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return internal_error("writing " + out + ": " + std::strerror(errno));
      w += static_cast<size_t>(n);
    }
    in_off += static_cast<loff_t>(chunk);
    left -= chunk;
  }
  if (::fsync(o.fd) != 0) return internal_error("fsync " + out + ": " + std::strerror(errno));
  return {};
}

struct PreparedDisk {
  size_t index = 0;  // into plan.disks
  std::string image;
  std::string source_format;
  TempFile converted;
  ImageFacts facts;
  uint64_t file_size = 0;
  std::string sha256;
};

Status write_import_bytes(int fd, const char* p, size_t n, const std::string& out) {
  size_t w = 0;
  while (w < n) {
    ssize_t r = ::write(fd, p + w, n - w);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return internal_error("writing " + out + ": " + std::strerror(errno));
    w += static_cast<size_t>(r);
  }
  return {};
}

// The share of the import's work done, 0..99 (100 is for the task's end).
int import_percent(uint64_t done, uint64_t total) {
  if (total == 0) return 0;
  return static_cast<int>(std::min<uint64_t>(99, done * 100 / total));
}

}  // namespace

uint64_t max_inflated_disk_bytes(uint64_t capacity_bytes) {
  uint64_t cap = capacity_bytes == 0 ? model::kMaxDiskBytes
                                     : std::min<uint64_t>(capacity_bytes, model::kMaxDiskBytes);
  return cap + cap / 8 + (16ull << 20);
}

Status inflate_gzip_range(int in, uint64_t offset, uint64_t size, const std::string& out,
                          uint64_t max_out, const std::string& field,
                          const std::function<void(uint64_t)>& on_read) {
  UniqueFd o(::open(out.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC));
  if (o.fd < 0) return internal_error("cannot open " + out + ": " + std::strerror(errno));
  z_stream z{};
  if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK) return internal_error("zlib: inflateInit2");
  struct End {
    z_stream& z;
    ~End() { inflateEnd(&z); }
  } end{z};
  std::vector<char> inbuf(1 << 20), outbuf(1 << 20);
  uint64_t read_pos = 0, written = 0;
  bool stream_end = false;
  while (true) {
    if (z.avail_in == 0) {
      if (read_pos == size) break;
      size_t chunk = static_cast<size_t>(std::min<uint64_t>(size - read_pos, inbuf.size()));
      if (auto st = read_exact(in, offset + read_pos, inbuf.data(), chunk); !st) return st;
      read_pos += chunk;
      if (on_read) on_read(read_pos);
      z.next_in = reinterpret_cast<Bytef*>(inbuf.data());
      z.avail_in = static_cast<uInt>(chunk);
    }
    if (stream_end) {  // another gzip member follows (gzip files may be concatenated)
      if (inflateReset(&z) != Z_OK) return internal_error("zlib: inflateReset");
      stream_end = false;
    }
    z.next_out = reinterpret_cast<Bytef*>(outbuf.data());
    z.avail_out = static_cast<uInt>(outbuf.size());
    int rc = inflate(&z, Z_NO_FLUSH);
    if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR)
      return invalid_argument(field, fmt::format("the gzip-compressed disk file is corrupt ({})",
                                                 z.msg ? z.msg : "zlib error"));
    size_t produced = outbuf.size() - z.avail_out;
    if (produced > max_out - written)
      return invalid_argument(field,
                              fmt::format("the gzip-compressed disk file inflates to more than "
                                          "{} bytes, more than its disk's capacity allows",
                                          max_out));
    if (auto st = write_import_bytes(o.fd, outbuf.data(), produced, out); !st) return st;
    written += produced;
    if (rc == Z_STREAM_END) stream_end = true;
    if (rc == Z_BUF_ERROR && z.avail_in != 0)
      return internal_error("zlib: no progress inflating the disk file");
  }
  if (!stream_end || written == 0)
    return invalid_argument(field, "the gzip-compressed disk file ends early (truncated?)");
  if (::fsync(o.fd) != 0) return internal_error("fsync " + out + ": " + std::strerror(errno));
  return {};
}

Result<std::vector<ArchiveMember>> index_archive(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.fd < 0)
    return internal_error("cannot open the upload: " + std::string(std::strerror(errno)));
  struct stat st {};
  if (::fstat(fd.fd, &st) != 0) return internal_error("cannot stat the upload");
  const uint64_t file_size = static_cast<uint64_t>(st.st_size);
  if (file_size == 0) return invalid_argument("body", "the archive is empty");
  std::vector<ArchiveMember> out;
  uint64_t pos = 0;
  model::TarHeader pending;  // what a pax header said about the next member
  bool have_pending = false;
  for (size_t index = 0;; ++index) {
    if (index > 4 * model::kMaxArchiveMembers)
      return invalid_argument("body", "the archive has too many headers");
    if (pos + 512 > file_size) {
      if (out.empty()) return invalid_argument("body", "not a tar archive (too short)");
      break;  // archives without the two end blocks are still read to their last member
    }
    std::array<unsigned char, 512> block{};
    if (auto r = read_exact(fd.fd, pos, block.data(), block.size()); !r)
      return tl::unexpected(r.error());
    auto h = model::parse_tar_header(block, out.size());
    if (!h) return tl::unexpected(h.error());
    pos += 512;
    if (h->kind == model::TarHeader::Kind::end) break;
    uint64_t padded = (h->size + 511) / 512 * 512;
    if (h->size > file_size - pos)
      return invalid_argument(fmt::format("archive.members[{}].size", out.size()),
                              "the member runs past the end of the archive (truncated upload?)");
    if (h->kind == model::TarHeader::Kind::pax_local ||
        h->kind == model::TarHeader::Kind::pax_global) {
      if (h->kind == model::TarHeader::Kind::pax_local) {
        std::string rec(h->size, '\0');
        if (auto r = read_exact(fd.fd, pos, rec.data(), rec.size()); !r)
          return tl::unexpected(r.error());
        pending = {};
        if (auto r = model::apply_pax_records(rec, pending, out.size()); !r)
          return tl::unexpected(r.error());
        have_pending = true;
      }
      pos += padded;
      continue;
    }
    if (h->kind == model::TarHeader::Kind::file) {
      ArchiveMember m;
      m.name = have_pending && !pending.name.empty() ? pending.name : h->name;
      m.size = have_pending && pending.size ? pending.size : h->size;
      if (m.size > file_size - pos)
        return invalid_argument(fmt::format("archive.members[{}].size", out.size()),
                                "the member runs past the end of the archive");
      padded = (m.size + 511) / 512 * 512;
      m.offset = pos;
      for (const auto& other : out)
        if (other.name == m.name)
          return invalid_argument(fmt::format("archive.members[{}].name", out.size()),
                                  "\"" + m.name + "\" appears twice in the archive");
      if (out.size() >= model::kMaxArchiveMembers)
        return invalid_argument(
            "body", fmt::format("the archive has more than {} files", model::kMaxArchiveMembers));
      out.push_back(std::move(m));
    }
    have_pending = false;
    pending = {};
    pos += padded;
  }
  return out;
}

VmImporter::VmImporter(store::Store& store, ImageDistributor& images, VmService& vms,
                       std::string work_dir)
    : store_(store), images_(images), vms_(vms), work_dir_(std::move(work_dir)) {}

Result<model::ImportPlan> VmImporter::plan(model::ImportFormat format, std::string_view descriptor,
                                           const model::NetworkMap& networks) {
  return format == model::ImportFormat::ova ? model::parse_ovf(descriptor, networks)
                                            : model::parse_libvirt_domain(descriptor, networks);
}

Result<ImportResult> VmImporter::import(const ImportRequest& req) {
  auto log = logger("manager.import");
  auto members = index_archive(req.archive_path);
  if (!members) return tl::unexpected(members.error());
  auto find = [&](std::string_view name) -> const ArchiveMember* {
    for (const auto& m : *members)
      if (m.name == name) return &m;
    return nullptr;
  };

  // The descriptor: an OVA's one .ovf (the OVF spec puts it first; any place is read),
  // a libvirt import's domain.xml.
  const ArchiveMember* desc = nullptr;
  if (req.format == model::ImportFormat::ova) {
    for (const auto& m : *members) {
      if (m.name.size() > 4 && m.name.compare(m.name.size() - 4, 4, ".ovf") == 0) {
        if (desc) return invalid_argument("body", "the OVA holds more than one .ovf descriptor");
        desc = &m;
      }
    }
    if (!desc) return invalid_argument("body", "the OVA holds no .ovf descriptor");
  } else {
    desc = find(model::kLibvirtDescriptorMember);
    if (!desc) return invalid_argument("body", "the archive holds no domain.xml");
  }
  if (desc->size > model::kMaxDescriptorBytes)
    return invalid_argument("descriptor", fmt::format("the descriptor is larger than {} bytes",
                                                      model::kMaxDescriptorBytes));
  UniqueFd archive(::open(req.archive_path.c_str(), O_RDONLY | O_CLOEXEC));
  if (archive.fd < 0) return internal_error("cannot open the upload");
  std::string text(desc->size, '\0');
  if (auto r = read_exact(archive.fd, desc->offset, text.data(), text.size()); !r)
    return tl::unexpected(r.error());
  auto plan = VmImporter::plan(req.format, text, req.networks);
  if (!plan) return tl::unexpected(plan.error());

  // Names: the VM's, then one catalog image per disk that has a file.
  model::VmSpec spec = plan->spec;
  if (!req.name.empty()) {
    if (auto st = model::validate_name("name", req.name); !st) return tl::unexpected(st.error());
    spec.name = req.name;
  }
  if (spec.name.empty())
    return invalid_argument(
        "name", fmt::format("the descriptor's name \"{}\" is not a DNS label; "
                            "give the VM a name (the name parameter; strata vm import --name)",
                            plan->descriptor_name.substr(0, 64)));
  if (auto vm = store_.get_vm_by_name(spec.name); vm)
    return make_error(ErrorCode::already_exists, fmt::format("vm {} already exists", spec.name),
                      "name");
  std::vector<PreparedDisk> prepared;
  for (size_t i = 0; i < plan->disks.size(); ++i) {
    const auto& d = plan->disks[i];
    if (d.source.empty()) continue;  // a blank disk (OVF disk without a file)
    PreparedDisk p;
    p.index = i;
    p.image = spec.name + "-" + d.name;
    if (auto st = model::validate_image_name("name", p.image); !st)
      return tl::unexpected(st.error());
    if (auto img = store_.get_image_by_name(p.image); img)
      return make_error(ErrorCode::already_exists,
                        fmt::format("image {} already exists (a VM imported before under this "
                                    "name?); delete it or choose another name",
                                    p.image),
                        "name");
    std::string member =
        req.format == model::ImportFormat::ova ? d.source : model::libvirt_disk_member(i);
    if (!find(member))
      return invalid_argument(
          fmt::format("descriptor.disks[{}]", i),
          fmt::format("the archive holds no file \"{}\" for disk {}", member, d.name));
    prepared.push_back(std::move(p));
  }

  // From here the import is a task: its progress follows the disks.
  std::optional<store::TaskRecord> task;
  RunningTasks::Guard lease;  // held until the task has ended
  uint64_t total_bytes = 0, done_bytes = 0;
  for (const auto& p : prepared)
    total_bytes +=
        find(req.format == model::ImportFormat::ova ? plan->disks[p.index].source
                                                    : model::libvirt_disk_member(p.index))
            ->size;
  if (tasks_) {
    auto t = tasks_->create(TaskKind::vm_import, "import", spec.name,
                            fmt::format("importing {} disk(s)", prepared.size()));
    if (!t) return tl::unexpected(t.error());
    task = *t;
    lease = RunningTasks::enter(running_, TaskKind::vm_import, task->id);
    (void)tasks_->update(task->id, "running", 0, task->message);
  }
  int shown_percent = -1;
  // A store write per percent at most, and one per step (force).
  auto report = [&](uint64_t done, const std::string& message, bool force = false) {
    int pct = import_percent(done, total_bytes);
    if (!tasks_ || !task || (pct == shown_percent && !force)) return;
    shown_percent = pct;
    (void)tasks_->update(task->id, "running", pct, message);
  };

  auto out = [&]() -> Result<ImportResult> {
    // Extract, probe, convert: all disks before anything is committed.
    for (auto& p : prepared) {
      const auto& d = plan->disks[p.index];
      std::string field = fmt::format("descriptor.disks[{}]", p.index);
      const ArchiveMember* m = find(
          req.format == model::ImportFormat::ova ? d.source : model::libvirt_disk_member(p.index));
      if (m->size == 0) return invalid_argument(field, "the disk file is empty");
      auto raw = make_temp(work_dir_, "src");
      if (!raw) return tl::unexpected(raw.error());
      // The disk's share of the progress: its archive bytes, half for unpacking when it is
      // compressed, the rest (all of it otherwise) for the conversion.
      const uint64_t before = done_bytes;
      const uint64_t unpack_share = d.compression == "gzip" ? m->size / 2 : 0;
      if (d.compression == "gzip") {
        std::string what = fmt::format("unpacking disk {} (gzip)", d.name);
        report(before, what, true);
        auto on_read = [&](uint64_t read) {
          report(before + read / 2, fmt::format("{}: {}%", what, read * 100 / m->size));
        };
        if (auto st = inflate_gzip_range(archive.fd, m->offset, m->size, raw->path,
                                         max_inflated_disk_bytes(d.capacity_bytes), field, on_read);
            !st)
          return tl::unexpected(st.error());
      } else if (auto st = copy_range(archive.fd, m->offset, m->size, raw->path); !st) {
        return tl::unexpected(st.error());
      }
      // The first bytes of the disk file as extracted (inflated when it was compressed).
      struct stat raw_st {};
      if (::stat(raw->path.c_str(), &raw_st) != 0)
        return internal_error("cannot stat the extracted disk");
      UniqueFd raw_fd(::open(raw->path.c_str(), O_RDONLY | O_CLOEXEC));
      if (raw_fd.fd < 0) return internal_error("cannot open the extracted disk");
      char head[64] = {};
      size_t head_n = static_cast<size_t>(
          std::min<uint64_t>(static_cast<uint64_t>(raw_st.st_size), sizeof head));
      if (auto st = read_exact(raw_fd.fd, 0, head, head_n); !st) return tl::unexpected(st.error());
      std::string sniffed = sniff_disk_format(std::string_view(head, head_n));
      if (sniffed == "vmdk-descriptor")
        return invalid_argument(field,
                                "a vmdk descriptor file names its extents by path; only "
                                "self-contained vmdk files (monolithicSparse, "
                                "streamOptimized) are imported");
      // The descriptor's format wins when it states one (libvirt reads a raw disk as raw
      // whatever its first bytes); a stated image format must be what the bytes are.
      std::string format = d.format.empty() ? sniffed : d.format;
      if (!d.format.empty() && d.format != "raw" && d.format != sniffed)
        return invalid_argument(
            field, fmt::format("the descriptor says {}, but the file is {}", d.format, sniffed));
      auto facts = probe_import_disk(raw->path, format, field);
      if (!facts) return tl::unexpected(facts.error());
      p.source_format = format;
      auto out = make_temp(work_dir_, "qcow2");
      if (!out) return tl::unexpected(out.error());
      log->info("import converting vm={} disk={} format={} bytes={}", spec.name, d.name, format,
                m->size);
      std::string what = fmt::format("converting disk {} ({} to qcow2)", d.name, format);
      const uint64_t convert_share = m->size - unpack_share;
      report(before + unpack_share, what + ": 0%", true);
      auto on_progress = [&](double pct) {
        auto part = static_cast<uint64_t>(static_cast<double>(convert_share) * pct / 100.0);
        report(before + unpack_share + std::min(part, convert_share),
               fmt::format("{}: {:.0f}%", what, pct));
      };
      if (auto st =
              convert_to_qcow2(raw->path, format, out->path, field, convert_limits_, on_progress);
          !st)
        return tl::unexpected(st.error());
      done_bytes += m->size;
      // The result is judged as any upload is: a qcow2 with no backing or data file.
      auto result = probe_image(out->path, "disk");
      if (!result) return tl::unexpected(result.error());
      p.facts = *result;
      struct stat st {};
      if (::stat(out->path.c_str(), &st) != 0)
        return internal_error("cannot stat the converted disk");
      p.file_size = static_cast<uint64_t>(st.st_size);
      auto digest = sha256_file(out->path);
      if (!digest) return tl::unexpected(digest.error());
      p.sha256 = *digest;
      p.converted = std::move(*out);
    }

    // Commit the images, then create the VM on them.
    std::vector<store::ImageRecord> committed;
    auto undo = [&] {
      for (const auto& img : committed) {
        (void)store_.delete_image(img.id, std::nullopt);
        ::unlink(catalog_file(images_.catalog_dir(), img.id).c_str());
      }
    };
    ImportResult result;
    result.unmapped = plan->unmapped;
    for (auto& p : prepared) {
      store::ImageRecord rec;
      rec.name = p.image;
      rec.kind = "disk";
      rec.format = p.facts.format;
      rec.virtual_size = p.facts.virtual_size;
      rec.size_bytes = p.file_size;
      rec.sha256 = p.sha256;
      auto created = images_.commit_upload(p.converted.path, rec);
      if (!created) {
        undo();
        return tl::unexpected(created.error());
      }
      p.converted.path.clear();  // renamed into the catalog
      committed.push_back(*created);
      auto& disk = spec.disks[p.index];
      disk.base_image = p.image;
      // The descriptor's capacity beyond the file's virtual size grows the overlay.
      uint64_t cap = plan->disks[p.index].capacity_bytes;
      disk.size_bytes = cap > static_cast<uint64_t>(p.facts.virtual_size) ? cap : 0;
    }
    VmDocument doc;
    doc.spec = spec;
    doc.placement.host = req.host;
    auto change = vms_.create(std::move(doc), req.start, req.actor);
    if (!change) {
      undo();
      return tl::unexpected(change.error());
    }
    result.change = std::move(*change);
    for (size_t i = 0; i < spec.disks.size(); ++i) {
      ImportedDisk out;
      out.disk = spec.disks[i].name;
      out.image = spec.disks[i].base_image;
      for (const auto& p : prepared)
        if (p.index == i) {
          out.source_format = p.source_format;
          out.virtual_size = p.facts.virtual_size;
        }
      result.disks.push_back(std::move(out));
    }
    log->info("import done vm={} disks={} unmapped={}", spec.name, result.disks.size(),
              result.unmapped.size());
    return result;
  }();
  if (task) {
    if (out) {
      nlohmann::json result = {
          {"vm", out->change.vm.name}, {"vm_id", out->change.vm.id}, {"task", out->change.task.id}};
      auto ended = tasks_->update(task->id, "succeeded", 100,
                                  "imported as vm " + out->change.vm.name, result);
      out->import_task = ended ? *ended : *task;
    } else {
      const Error& e = out.error();
      (void)tasks_->fail(task->id, e.field.empty() ? e.message : e.field + ": " + e.message);
    }
  }
  return out;
}

}  // namespace strata::manager
