// vm_import.h: libvirt domain XML and OVF descriptors to an ImportPlan, through libxml2.
// Hostile-input rules: a DOCTYPE (and with it every entity declaration) is refused before
// libxml2 sees the text, the network is never used (XML_PARSE_NONET), entities are not
// substituted, and the size is capped; after parsing every value is validated and bounded.
#include "strata/model/vm_import.h"

#include <fmt/format.h>
#include <libxml/parser.h>
#include <libxml/tree.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <memory>
#include <set>

#include "strata/model/validation.h"

namespace strata::model {

namespace {

constexpr uint64_t kMiB = 1ull << 20;

struct DocFree {
  void operator()(xmlDoc* d) const { xmlFreeDoc(d); }
};
using DocPtr = std::unique_ptr<xmlDoc, DocFree>;
struct CtxtFree {
  void operator()(xmlParserCtxt* c) const { xmlFreeParserCtxt(c); }
};

tl::unexpected<Error> bad_descriptor(std::string field, std::string message) {
  return invalid_argument("descriptor" + (field.empty() ? "" : "." + field), std::move(message));
}

// Printable, bounded excerpt of a value for an error message.
std::string shown(std::string_view v) {
  std::string s(v.substr(0, std::min<size_t>(v.size(), 64)));
  for (char& c : s)
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) > 0x7e) c = '?';
  if (v.size() > 64) s += "...";
  return s;
}

Result<DocPtr> parse_xml(std::string_view xml) {
  if (xml.empty()) return bad_descriptor("", "the descriptor is empty");
  if (xml.size() > kMaxDescriptorBytes)
    return bad_descriptor("", fmt::format("the descriptor is {} bytes, more than the {} allowed",
                                          xml.size(), kMaxDescriptorBytes));
  if (xml.find('\0') != std::string_view::npos)
    return bad_descriptor("", "the descriptor holds a NUL byte");
  // No DTD at all: entity declarations (billion laughs, external entities) never reach the
  // parser. Neither libvirt nor OVF tools write one.
  if (xml.find("<!DOCTYPE") != std::string_view::npos ||
      xml.find("<!ENTITY") != std::string_view::npos)
    return bad_descriptor("", "a DOCTYPE or entity declaration is not allowed in a descriptor");
  xmlInitParser();
  std::unique_ptr<xmlParserCtxt, CtxtFree> ctxt(xmlNewParserCtxt());
  if (!ctxt) return internal_error("libxml2: no parser context");
  DocPtr doc(xmlCtxtReadMemory(ctxt.get(), xml.data(), static_cast<int>(xml.size()),
                               "descriptor.xml", nullptr,
                               XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING));
  if (!doc) {
    const xmlError* e = xmlCtxtGetLastError(ctxt.get());
    std::string msg = e && e->message ? e->message : "not well-formed";
    while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
    return bad_descriptor(
        "", fmt::format("not well-formed XML (line {}): {}", e ? e->line : 0, shown(msg)));
  }
  if (!xmlDocGetRootElement(doc.get()))
    return bad_descriptor("", "the descriptor has no root element");
  return doc;
}

bool is(const xmlNode* n, const char* local) {
  return n && n->type == XML_ELEMENT_NODE &&
         std::strcmp(reinterpret_cast<const char*>(n->name), local) == 0;
}

std::vector<const xmlNode*> children(const xmlNode* n, const char* local = nullptr) {
  std::vector<const xmlNode*> out;
  for (const xmlNode* c = n ? n->children : nullptr; c; c = c->next)
    if (c->type == XML_ELEMENT_NODE && (!local || is(c, local))) out.push_back(c);
  return out;
}

const xmlNode* child(const xmlNode* n, const char* local) {
  for (const xmlNode* c = n ? n->children : nullptr; c; c = c->next)
    if (is(c, local)) return c;
  return nullptr;
}

// Attribute by local name, whatever its namespace prefix (ovf:href, href).
std::optional<std::string> attr(const xmlNode* n, const char* local) {
  for (const xmlAttr* a = n ? n->properties : nullptr; a; a = a->next) {
    if (std::strcmp(reinterpret_cast<const char*>(a->name), local) != 0) continue;
    xmlChar* v = xmlNodeListGetString(n->doc, a->children, 1);
    std::string s = v ? reinterpret_cast<const char*>(v) : "";
    if (v) xmlFree(v);
    return s;
  }
  return std::nullopt;
}

std::string trim(std::string s) {
  auto sp = [](unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  while (!s.empty() && sp(s.back())) s.pop_back();
  size_t i = 0;
  while (i < s.size() && sp(s[i])) ++i;
  return s.substr(i);
}

std::string text(const xmlNode* n) {
  if (!n) return "";
  xmlChar* v = xmlNodeGetContent(n);
  std::string s = v ? reinterpret_cast<const char*>(v) : "";
  if (v) xmlFree(v);
  return trim(std::move(s));
}

std::optional<uint64_t> to_u64(std::string_view s) {
  if (s.empty() || s.size() > 20) return std::nullopt;
  uint64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

std::optional<uint64_t> mul(uint64_t a, uint64_t b) {
  if (a != 0 && b > UINT64_MAX / a) return std::nullopt;
  return a * b;
}

Result<uint64_t> memory_mib(std::string_view field, uint64_t bytes) {
  uint64_t mib = bytes / kMiB + (bytes % kMiB ? 1 : 0);
  if (mib < kMinMemoryMib || mib > kMaxMemoryMib)
    return bad_descriptor(std::string(field),
                          fmt::format("{} bytes of memory is outside {} MiB..{} MiB", bytes,
                                      kMinMemoryMib, kMaxMemoryMib));
  return mib;
}

Result<uint32_t> vcpus_of(std::string_view field, std::string_view value) {
  auto n = to_u64(value);
  if (!n || *n < 1 || *n > kMaxVcpus)
    return bad_descriptor(std::string(field), fmt::format("\"{}\" is not a CPU count in 1..{}",
                                                          shown(value), kMaxVcpus));
  return static_cast<uint32_t>(*n);
}

// A host path as a libvirt XML names a disk: absolute, printable, bounded. The manager
// never opens it (the CLI reads it on the user's machine); it is shown back in the plan.
Status check_source_path(const std::string& field, std::string_view p) {
  if (p.empty()) return bad_descriptor(field, "the disk has no source file");
  if (p.size() > 4096) return bad_descriptor(field, "the source path is longer than 4096 bytes");
  for (unsigned char c : p)
    if (c < 0x20 || c == 0x7f)
      return bad_descriptor(field, "the source path holds a control character");
  return {};
}

// The disk name: the descriptor's (libvirt target dev) when it is a DNS label not used
// yet, else disk<i>.
std::string disk_name(std::string_view preferred, size_t index, std::set<std::string>& used) {
  std::string name(preferred);
  if (name.empty() || !validate_name("name", name) || used.count(name))
    name = fmt::format("disk{}", index);
  while (used.count(name)) name += "x";
  used.insert(name);
  return name;
}

// The spec's disks from the plan's, and what Strata's hardware model needs: a disk to
// boot from, UEFI on q35.
Status finish_spec(ImportPlan& plan) {
  if (validate_name("name", plan.descriptor_name)) plan.spec.name = plan.descriptor_name;
  if (plan.disks.empty()) return bad_descriptor("disks", "the VM has no disk that can be imported");
  if (plan.spec.firmware == Firmware::uefi && plan.spec.machine != "q35") {
    plan.unmapped.push_back("machine " + plan.spec.machine + ": UEFI needs q35 here; q35 is used");
    plan.spec.machine = "q35";
  }
  plan.spec.disks.clear();
  bool any_boot = false;
  for (const auto& d : plan.disks) any_boot = any_boot || d.boot;
  for (size_t i = 0; i < plan.disks.size(); ++i) {
    auto& d = plan.disks[i];
    if (!any_boot && i == 0) d.boot = true;
    DiskSpec s;
    s.name = d.name;
    s.boot = d.boot;
    s.readonly = d.readonly;
    if (d.source.empty()) s.size_bytes = d.capacity_bytes;
    plan.spec.disks.push_back(s);
  }
  return {};
}

// ---------------------------------------------------------------- libvirt

Result<uint64_t> libvirt_bytes(const std::string& field, const xmlNode* n) {
  std::string unit = attr(n, "unit").value_or("KiB");
  static const std::pair<const char*, uint64_t> kUnits[] = {
      {"b", 1},           {"bytes", 1},       {"KB", 1000},        {"k", 1024},
      {"KiB", 1024},      {"MB", 1000000},    {"M", kMiB},         {"MiB", kMiB},
      {"GB", 1000000000}, {"G", 1ull << 30},  {"GiB", 1ull << 30}, {"TB", 1000000000000},
      {"T", 1ull << 40},  {"TiB", 1ull << 40}};
  uint64_t scale = 0;
  for (const auto& [u, s] : kUnits)
    if (unit == u) scale = s;
  if (scale == 0) return bad_descriptor(field + ".unit", "unknown unit \"" + shown(unit) + "\"");
  std::string v = text(n);
  auto q = to_u64(v);
  if (!q) return bad_descriptor(field, "\"" + shown(v) + "\" is not a whole number");
  auto bytes = mul(*q, scale);
  if (!bytes) return bad_descriptor(field, "the size overflows");
  return *bytes;
}

// A source network (a libvirt network's name, an OVF Connection) onto the NIC: a bridge NIC
// when --network-map names it, else user-mode networking, said in the plan (`what` names the
// source network for the message).
void map_import_network(NicSpec& nic, const std::string& net, const NetworkMap& networks,
                        const std::string& what, ImportPlan& plan) {
  if (auto it = networks.find(net); it != networks.end()) {
    nic.mode = NicMode::bridge;  // --network-map NET=BRIDGE
    nic.bridge = it->second;
  } else {
    plan.unmapped.push_back(what + " \"" + shown(net) + "\" mapped to user-mode networking");
  }
}

}  // namespace

const char* to_string(ImportFormat f) { return f == ImportFormat::ova ? "ova" : "libvirt"; }

std::optional<ImportFormat> import_format_from_string(std::string_view s) {
  if (s == "ova") return ImportFormat::ova;
  if (s == "libvirt") return ImportFormat::libvirt;
  return std::nullopt;
}

Status validate_network_map(std::string_view field, const NetworkMap& networks) {
  if (networks.size() > kMaxNetworkMapEntries)
    return invalid_argument(std::string(field),
                            fmt::format("at most {} network mappings", kMaxNetworkMapEntries));
  for (const auto& [source, bridge] : networks) {
    bool printable =
        !source.empty() && source.size() <= 256 &&
        std::all_of(source.begin(), source.end(), [](char c) { return c >= 0x20 && c < 0x7f; });
    if (!printable)
      return invalid_argument(std::string(field),
                              "a source network name must be 1..256 printable ASCII bytes");
    if (auto st = validate_ifname(fmt::format("{}.{}", field, source), bridge); !st) return st;
  }
  return {};
}

Result<ImportPlan> parse_libvirt_domain(std::string_view xml, const NetworkMap& networks) {
  if (auto st = validate_network_map("network_map", networks); !st)
    return tl::unexpected(st.error());
  auto doc = parse_xml(xml);
  if (!doc) return tl::unexpected(doc.error());
  const xmlNode* dom = xmlDocGetRootElement(doc->get());
  if (!is(dom, "domain"))
    return bad_descriptor("", "not a libvirt domain (the root element is not <domain>)");
  ImportPlan plan;
  plan.spec.nics.clear();
  if (auto t = attr(dom, "type"); t && *t != "kvm" && *t != "qemu")
    return bad_descriptor("type", "domain type \"" + shown(*t) + "\" is not a QEMU/KVM guest");

  const xmlNode* name = child(dom, "name");
  if (!name || text(name).empty()) return bad_descriptor("name", "the domain has no <name>");
  plan.descriptor_name = text(name);
  if (plan.descriptor_name.size() > 256)
    return bad_descriptor("name", "the name is longer than 256 bytes");

  const xmlNode* mem = child(dom, "memory");
  if (!mem) return bad_descriptor("memory", "the domain has no <memory>");
  auto bytes = libvirt_bytes("memory", mem);
  if (!bytes) return tl::unexpected(bytes.error());
  auto mib = memory_mib("memory", *bytes);
  if (!mib) return tl::unexpected(mib.error());
  plan.spec.memory_mib = *mib;

  if (const xmlNode* vcpu = child(dom, "vcpu")) {
    auto n = vcpus_of("vcpu", text(vcpu));
    if (!n) return tl::unexpected(n.error());
    plan.spec.vcpus = *n;
  }

  bool boot_cdrom_first = false;
  if (const xmlNode* os = child(dom, "os")) {
    if (const xmlNode* type = child(os, "type")) {
      if (auto arch = attr(type, "arch"); arch && *arch != "x86_64")
        return bad_descriptor("os.type.arch",
                              "only x86_64 guests are imported, not \"" + shown(*arch) + "\"");
      std::string machine = attr(type, "machine").value_or("");
      if (machine.find("q35") != std::string::npos || machine.empty()) {
        plan.spec.machine = "q35";
      } else if (machine == "pc" || machine.find("i440fx") != std::string::npos) {
        plan.spec.machine = "pc";
      } else {
        plan.unmapped.push_back("os.type.machine \"" + shown(machine) + "\": q35 is used");
        plan.spec.machine = "q35";
      }
    }
    if (attr(os, "firmware").value_or("") == "efi") plan.spec.firmware = Firmware::uefi;
    if (const xmlNode* loader = child(os, "loader"))
      if (attr(loader, "type").value_or("") == "pflash") plan.spec.firmware = Firmware::uefi;
    if (child(os, "nvram"))
      plan.unmapped.push_back("os.nvram: the UEFI variables are not imported (fresh ones)");
    for (const char* k : {"kernel", "initrd", "cmdline"})
      if (child(os, k))
        plan.unmapped.push_back(std::string("os.") + k +
                                ": direct kernel boot from a host path is not imported");
    auto boots = children(os, "boot");
    if (!boots.empty() && attr(boots[0], "dev").value_or("") == "cdrom") boot_cdrom_first = true;
  }
  if (boot_cdrom_first) plan.unmapped.push_back("os.boot dev=cdrom: the VM boots from its disk");
  if (child(dom, "cpu")) plan.unmapped.push_back("cpu: the CPU model is the cluster's baseline");

  static const std::set<std::string> kTop = {
      "name",     "uuid", "title",    "description", "metadata", "memory",      "currentMemory",
      "vcpu",     "os",   "features", "cpu",         "clock",    "on_poweroff", "on_reboot",
      "on_crash", "pm",   "devices",  "resource",    "seclabel", "genid"};
  for (const xmlNode* c : children(dom))
    if (!kTop.count(reinterpret_cast<const char*>(c->name)))
      plan.unmapped.push_back(shown(reinterpret_cast<const char*>(c->name)) + ": not imported");
  if (child(dom, "uuid")) plan.unmapped.push_back("uuid: the VM gets a new one");

  const xmlNode* devices = child(dom, "devices");
  std::set<std::string> used;
  uint64_t best_order = UINT64_MAX;
  size_t best = SIZE_MAX;
  size_t disk_i = 0, nic_i = 0;
  static const std::set<std::string> kQuietDevices = {
      "emulator", "controller", "input",      "console",  "serial",
      "channel",  "video",      "memballoon", "graphics", "rng"};
  for (const xmlNode* dev : children(devices)) {
    std::string kind = reinterpret_cast<const char*>(dev->name);
    if (kind == "disk") {
      size_t i = disk_i++;
      std::string f = fmt::format("disks[{}]", i);
      std::string device = attr(dev, "device").value_or("disk");
      std::string type = attr(dev, "type").value_or("file");
      if (device != "disk") {
        plan.unmapped.push_back(f + " (" + shown(device) +
                                "): not imported; attach an iso image to the CD-ROM instead");
        continue;
      }
      if (type != "file") {
        plan.unmapped.push_back(f + " (type " + shown(type) +
                                "): only file disks are imported; copy it to a file first");
        continue;
      }
      if (plan.disks.size() >= kMaxDisks)
        return bad_descriptor("disks", fmt::format("more than {} disks", kMaxDisks));
      ImportDisk d;
      if (const xmlNode* drv = child(dev, "driver")) {
        d.format = attr(drv, "type").value_or("");
        if (!d.format.empty() && d.format != "qcow2" && d.format != "raw" && d.format != "vmdk")
          return bad_descriptor(f + ".driver.type", "unsupported disk format \"" + shown(d.format) +
                                                        "\" (qcow2, raw or vmdk)");
      }
      const xmlNode* src = child(dev, "source");
      d.source = src ? attr(src, "file").value_or("") : "";
      if (auto st = check_source_path(f + ".source", d.source); !st)
        return tl::unexpected(st.error());
      const xmlNode* target = child(dev, "target");
      d.name = disk_name(target ? attr(target, "dev").value_or("") : "", i, used);
      d.readonly = child(dev, "readonly") != nullptr;
      if (child(dev, "shareable")) plan.unmapped.push_back(f + ".shareable: not kept");
      if (const xmlNode* b = child(dev, "boot")) {
        auto order = to_u64(attr(b, "order").value_or(""));
        if (!order) return bad_descriptor(f + ".boot.order", "not a whole number");
        if (*order < best_order) {
          best_order = *order;
          best = plan.disks.size();
        }
      }
      plan.disks.push_back(std::move(d));
    } else if (kind == "interface") {
      size_t i = nic_i++;
      std::string f = fmt::format("interfaces[{}]", i);
      std::string type = attr(dev, "type").value_or("");
      NicSpec nic;
      if (type == "bridge") {
        const xmlNode* src = child(dev, "source");
        std::string br = src ? attr(src, "bridge").value_or("") : "";
        if (auto st = validate_ifname("descriptor." + f + ".source.bridge", br); !st)
          return tl::unexpected(st.error());
        nic.mode = NicMode::bridge;
        nic.bridge = br;
        // <vlan><tag id='10'/></vlan>: one untagged VLAN maps to the NIC's; a trunk does not.
        if (const xmlNode* vlan = child(dev, "vlan")) {
          auto tags = children(vlan, "tag");
          uint64_t id = 0;  // 0: none usable
          if (tags.size() == 1 && attr(vlan, "trunk").value_or("no") != "yes")
            if (auto v = to_u64(attr(tags[0], "id").value_or(""))) id = *v;
          if (id >= 1 && id <= kMaxVlanId)
            nic.vlan = static_cast<uint16_t>(id);
          else
            plan.unmapped.push_back(f + ".vlan: only one VLAN tag (1..4094), not a trunk, is kept");
        }
      } else if (type == "network" || type == "user") {
        nic.mode = NicMode::user;
        if (type == "network") {
          const xmlNode* src = child(dev, "source");
          std::string net = src ? attr(src, "network").value_or("") : "";
          map_import_network(nic, net, networks, f + ": libvirt network", plan);
        }
      } else {
        plan.unmapped.push_back(f + " (type " + shown(type) + "): not imported");
        continue;
      }
      if (plan.spec.nics.size() >= kMaxNics)
        return bad_descriptor("interfaces", fmt::format("more than {} interfaces", kMaxNics));
      if (const xmlNode* mac = child(dev, "mac")) {
        std::string a = attr(mac, "address").value_or("");
        for (char& c : a) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        if (validate_mac("mac", a))
          nic.mac = a;
        else
          plan.unmapped.push_back(f + ".mac \"" + shown(a) + "\": a new MAC address is generated");
      }
      plan.spec.nics.push_back(nic);
    } else if (!kQuietDevices.count(kind)) {
      plan.unmapped.push_back("devices." + shown(kind) + ": not imported");
    }
  }
  if (best != SIZE_MAX) plan.disks[best].boot = true;
  if (auto st = finish_spec(plan); !st) return tl::unexpected(st.error());
  return plan;
}

// ---------------------------------------------------------------- OVF

std::optional<uint64_t> parse_allocation_units(std::string_view units) {
  std::string u;
  for (char c : units)
    if (c != ' ' && c != '\t') u += c;
  if (u.empty() || u == "byte" || u == "bytes") return 1;
  if (u == "KiloBytes" || u == "KB") return 1024;
  if (u == "MegaBytes" || u == "MB") return kMiB;
  if (u == "GigaBytes" || u == "GB") return 1ull << 30;
  if (u.rfind("byte*2^", 0) == 0) {
    auto e = to_u64(std::string_view(u).substr(7));
    if (!e || *e > 62) return std::nullopt;
    return 1ull << *e;
  }
  return std::nullopt;
}

namespace {

Status check_href(const std::string& field, std::string_view href) {
  if (href.find("://") != std::string_view::npos)
    return bad_descriptor(
        field, "\"" + shown(href) + "\" is a URL; only files inside the OVA are imported");
  if (auto st = validate_member_name("descriptor." + field, href); !st)
    return tl::unexpected(st.error());
  return {};
}

struct OvfFile {
  std::string href;
  std::string compression;  // "" or "gzip"
  uint64_t size = 0;        // ovf:size, 0 when not stated
};

struct OvfDisk {
  std::string id;
  std::string file_ref;
  uint64_t capacity = 0;
  std::string format;
  bool used = false;
};

std::string ovf_format(std::string_view uri) {
  if (uri.find("vmdk") != std::string_view::npos) return "vmdk";
  if (uri.find("qcow") != std::string_view::npos) return "qcow2";
  if (uri.find("raw") != std::string_view::npos) return "raw";
  return "";
}

std::string resource_name(uint64_t type) {
  switch (type) {
    case 14:
      return "floppy drive";
    case 15:
    case 16:
      return "CD/DVD drive";
    case 21:
      return "serial port";
    case 22:
      return "parallel port";
    case 23:
      return "USB controller";
    case 35:
      return "sound card";
    default:
      return fmt::format("resource type {}", type);
  }
}

}  // namespace

Result<ImportPlan> parse_ovf(std::string_view xml, const NetworkMap& networks) {
  if (auto st = validate_network_map("network_map", networks); !st)
    return tl::unexpected(st.error());
  auto doc = parse_xml(xml);
  if (!doc) return tl::unexpected(doc.error());
  const xmlNode* env = xmlDocGetRootElement(doc->get());
  if (!is(env, "Envelope"))
    return bad_descriptor("", "not an OVF descriptor (the root is not <Envelope>)");
  ImportPlan plan;
  plan.spec.nics.clear();

  std::map<std::string, OvfFile> files;
  size_t fi = 0;
  for (const xmlNode* f : children(child(env, "References"), "File")) {
    std::string field = fmt::format("References.File[{}]", fi++);
    if (files.size() >= kMaxArchiveMembers)
      return bad_descriptor("References", fmt::format("more than {} files", kMaxArchiveMembers));
    std::string id = attr(f, "id").value_or("");
    std::string href = attr(f, "href").value_or("");
    if (id.empty()) return bad_descriptor(field + ".id", "the file has no id");
    if (auto st = check_href(field + ".href", href); !st) return tl::unexpected(st.error());
    OvfFile file{href, "", 0};
    std::string compression = attr(f, "compression").value_or("identity");
    if (compression == "gzip")
      file.compression = "gzip";
    else if (compression != "identity")
      return bad_descriptor(field + ".compression",
                            "\"" + shown(compression) +
                                "\": only gzip-compressed files are supported; unpack the OVA");
    if (auto size = attr(f, "size")) {
      auto n = to_u64(*size);
      if (!n)
        return bad_descriptor(field + ".size", "\"" + shown(*size) + "\" is not a whole number");
      file.size = *n;
    }
    if (attr(f, "chunkSize"))
      return bad_descriptor(field + ".chunkSize",
                            "chunked files are not supported; join the chunks first");
    if (!files.emplace(id, std::move(file)).second)
      return bad_descriptor(field + ".id", "duplicate file id");
  }

  std::vector<OvfDisk> disks;
  size_t di = 0;
  for (const xmlNode* d : children(child(env, "DiskSection"), "Disk")) {
    std::string field = fmt::format("DiskSection.Disk[{}]", di++);
    if (disks.size() >= kMaxArchiveMembers)
      return bad_descriptor("DiskSection", fmt::format("more than {} disks", kMaxArchiveMembers));
    OvfDisk disk;
    disk.id = attr(d, "diskId").value_or("");
    if (disk.id.empty()) return bad_descriptor(field + ".diskId", "the disk has no diskId");
    disk.file_ref = attr(d, "fileRef").value_or("");
    if (!disk.file_ref.empty() && !files.count(disk.file_ref))
      return bad_descriptor(field + ".fileRef", "names no file of References");
    std::string cap = attr(d, "capacity").value_or("");
    auto q = to_u64(cap);
    if (!q)
      return bad_descriptor(field + ".capacity", "\"" + shown(cap) + "\" is not a whole number");
    std::string units = attr(d, "capacityAllocationUnits").value_or("byte");
    auto scale = parse_allocation_units(units);
    if (!scale)
      return bad_descriptor(field + ".capacityAllocationUnits",
                            "unknown units \"" + shown(units) + "\"");
    auto bytes = mul(*q, *scale);
    if (!bytes || *bytes > kMaxDiskBytes || *bytes == 0)
      return bad_descriptor(field + ".capacity",
                            fmt::format("the capacity must be 1 byte..{} bytes", kMaxDiskBytes));
    disk.capacity = *bytes;
    disk.format = ovf_format(attr(d, "format").value_or(""));
    for (const auto& other : disks)
      if (other.id == disk.id) return bad_descriptor(field + ".diskId", "duplicate disk id");
    disks.push_back(std::move(disk));
  }

  const xmlNode* vs = child(env, "VirtualSystem");
  if (!vs) {
    if (child(env, "VirtualSystemCollection"))
      return bad_descriptor("VirtualSystemCollection",
                            "an OVA of several VMs (a VirtualSystemCollection) is not supported; "
                            "export each VM to its own OVA");
    return bad_descriptor("VirtualSystem", "the descriptor has no VirtualSystem");
  }
  plan.descriptor_name = text(child(vs, "Name"));
  if (plan.descriptor_name.empty()) plan.descriptor_name = attr(vs, "id").value_or("");
  if (plan.descriptor_name.size() > 256)
    return bad_descriptor("VirtualSystem.Name", "the name is longer than 256 bytes");

  const xmlNode* hw = child(vs, "VirtualHardwareSection");
  if (!hw)
    return bad_descriptor("VirtualHardwareSection", "the VirtualSystem has no hardware section");
  bool have_cpu = false, have_mem = false;
  std::set<std::string> used_names;
  size_t ii = 0;
  for (const xmlNode* item : children(hw)) {
    std::string iname = reinterpret_cast<const char*>(item->name);
    if (iname == "Config" || iname == "ExtraConfig") {
      if (attr(item, "key").value_or("") == "firmware") {
        std::string v = attr(item, "value").value_or("");
        if (v == "efi")
          plan.spec.firmware = Firmware::uefi;
        else if (v != "bios")
          plan.unmapped.push_back("firmware \"" + shown(v) + "\": BIOS is used");
      }
      continue;
    }
    if (iname != "Item" && iname != "StorageItem" && iname != "EthernetPortItem") continue;
    std::string field = fmt::format("VirtualHardwareSection.Item[{}]", ii++);
    std::string rt = text(child(item, "ResourceType"));
    auto type = to_u64(rt);
    if (!type)
      return bad_descriptor(field + ".ResourceType", "\"" + shown(rt) + "\" is not a number");
    std::string qty = text(child(item, "VirtualQuantity"));
    switch (*type) {
      case 3: {  // processors
        auto n = vcpus_of(field + ".VirtualQuantity", qty);
        if (!n) return tl::unexpected(n.error());
        plan.spec.vcpus = *n;
        have_cpu = true;
        break;
      }
      case 4: {  // memory
        auto q = to_u64(qty);
        if (!q)
          return bad_descriptor(field + ".VirtualQuantity",
                                "\"" + shown(qty) + "\" is not a whole number");
        std::string units = text(child(item, "AllocationUnits"));
        auto scale = parse_allocation_units(units.empty() ? "byte * 2^20" : units);
        if (!scale)
          return bad_descriptor(field + ".AllocationUnits",
                                "unknown units \"" + shown(units) + "\"");
        auto bytes = mul(*q, *scale);
        if (!bytes) return bad_descriptor(field + ".VirtualQuantity", "the memory size overflows");
        auto mib = memory_mib(field + ".VirtualQuantity", *bytes);
        if (!mib) return tl::unexpected(mib.error());
        plan.spec.memory_mib = *mib;
        have_mem = true;
        break;
      }
      case 17: {  // disk drive
        std::string res = text(child(item, "HostResource"));
        std::string id;
        for (std::string_view prefix : {"ovf:/disk/", "/disk/"})
          if (res.rfind(prefix, 0) == 0) id = res.substr(prefix.size());
        auto it =
            std::find_if(disks.begin(), disks.end(), [&](const OvfDisk& d) { return d.id == id; });
        if (id.empty() || it == disks.end())
          return bad_descriptor(field + ".HostResource",
                                "\"" + shown(res) + "\" names no disk of the DiskSection");
        if (it->used) return bad_descriptor(field + ".HostResource", "the disk is attached twice");
        it->used = true;
        if (plan.disks.size() >= kMaxDisks)
          return bad_descriptor("VirtualHardwareSection",
                                fmt::format("more than {} disks", kMaxDisks));
        ImportDisk d;
        d.name = disk_name("", plan.disks.size(), used_names);
        d.capacity_bytes = it->capacity;
        d.format = it->format;
        if (!it->file_ref.empty()) {
          const OvfFile& file = files.at(it->file_ref);
          d.source = file.href;
          d.compression = file.compression;
          d.file_size = file.size;
        }
        plan.disks.push_back(std::move(d));
        break;
      }
      case 10: {  // ethernet adapter
        if (plan.spec.nics.size() >= kMaxNics)
          return bad_descriptor("VirtualHardwareSection",
                                fmt::format("more than {} NICs", kMaxNics));
        NicSpec nic;
        nic.mode = NicMode::user;
        std::string mac = text(child(item, "Address"));
        for (char& c : mac) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        if (!mac.empty()) {
          if (validate_mac("mac", mac))
            nic.mac = mac;
          else
            plan.unmapped.push_back(field + ".Address \"" + shown(mac) +
                                    "\": a new MAC address is generated");
        }
        map_import_network(nic, text(child(item, "Connection")), networks, field + ": network",
                           plan);
        plan.spec.nics.push_back(nic);
        break;
      }
      case 5:   // IDE controller
      case 6:   // SCSI controller
      case 20:  // other storage controller (SATA)
      case 24:  // graphics: Strata gives every VM a VNC display
        break;  // the disks behind them are virtio disks in Strata
      default:
        plan.unmapped.push_back(field + " (" + resource_name(*type) + "): not imported");
    }
  }
  if (!have_cpu) plan.unmapped.push_back("no CPU item: 1 vCPU");
  if (!have_mem) return bad_descriptor("VirtualHardwareSection", "no memory item (ResourceType 4)");
  for (const auto& d : disks)
    if (!d.used)
      plan.unmapped.push_back("disk " + shown(d.id) + ": attached to no item, not imported");
  if (auto st = finish_spec(plan); !st) return tl::unexpected(st.error());
  return plan;
}

}  // namespace strata::model
