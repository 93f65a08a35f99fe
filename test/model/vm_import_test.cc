// VM import descriptors (vm_import.h): a libvirt domain as `virsh dumpxml` writes it and an
// OVF as VMware's ovftool / VirtualBox write it, mapped to a VmSpec; hostile inputs refused
// with the field named (missing fields, absurd sizes, traversal in file names, entities,
// URLs); the tar framing (ustar headers written and read back, refused member types).
#include "strata/model/vm_import.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <string>

#include "strata/model/validation.h"

namespace strata::model {
namespace {

const char* kDomain = R"(<domain type='kvm' id='3'>
  <name>web-01</name>
  <uuid>0b5e3c8e-9a55-4c55-8d2e-4a2c6f5f2b11</uuid>
  <memory unit='KiB'>1048576</memory>
  <currentMemory unit='KiB'>1048576</currentMemory>
  <vcpu placement='static'>2</vcpu>
  <os firmware='efi'>
    <type arch='x86_64' machine='pc-q35-7.2'>hvm</type>
    <nvram>/var/lib/libvirt/qemu/nvram/web-01_VARS.fd</nvram>
    <boot dev='hd'/>
  </os>
  <features><acpi/><apic/></features>
  <cpu mode='host-passthrough' check='none'/>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='/var/lib/libvirt/images/web-01.qcow2'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='/var/lib/libvirt/images/web-01-data.img'/>
      <target dev='vdb' bus='virtio'/>
      <boot order='1'/>
    </disk>
    <disk type='file' device='cdrom'>
      <source file='/isos/debian.iso'/>
      <target dev='sda' bus='sata'/>
      <readonly/>
    </disk>
    <interface type='bridge'>
      <mac address='52:54:00:AA:BB:01'/>
      <source bridge='br0'/>
      <vlan><tag id='42'/></vlan>
      <model type='virtio'/>
    </interface>
    <interface type='network'>
      <mac address='52:54:00:aa:bb:02'/>
      <source network='default'/>
    </interface>
    <hostdev mode='subsystem' type='pci'/>
    <graphics type='spice'/>
  </devices>
</domain>)";

bool mentions(const std::vector<std::string>& list, std::string_view what) {
  return std::any_of(list.begin(), list.end(),
                     [&](const std::string& s) { return s.find(what) != std::string::npos; });
}

TEST(LibvirtImport, MapsADomainAsVirshWritesIt) {
  auto p = parse_libvirt_domain(kDomain);
  ASSERT_TRUE(p) << p.error().to_string();
  EXPECT_EQ(p->descriptor_name, "web-01");
  EXPECT_EQ(p->spec.name, "web-01");
  EXPECT_EQ(p->spec.memory_mib, 1024u);
  EXPECT_EQ(p->spec.vcpus, 2u);
  EXPECT_EQ(p->spec.machine, "q35");
  EXPECT_EQ(p->spec.firmware, Firmware::uefi);
  ASSERT_EQ(p->disks.size(), 2u);
  EXPECT_EQ(p->disks[0].name, "vda");
  EXPECT_EQ(p->disks[0].format, "qcow2");
  EXPECT_EQ(p->disks[0].source, "/var/lib/libvirt/images/web-01.qcow2");
  EXPECT_FALSE(p->disks[0].boot);
  EXPECT_EQ(p->disks[1].name, "vdb");
  EXPECT_EQ(p->disks[1].format, "raw");
  EXPECT_TRUE(p->disks[1].boot);  // <boot order='1'/>
  ASSERT_EQ(p->spec.disks.size(), 2u);
  EXPECT_TRUE(p->spec.disks[1].boot);
  ASSERT_EQ(p->spec.nics.size(), 2u);
  EXPECT_EQ(p->spec.nics[0].mode, NicMode::bridge);
  EXPECT_EQ(p->spec.nics[0].bridge, "br0");
  EXPECT_EQ(p->spec.nics[0].mac, "52:54:00:aa:bb:01");
  EXPECT_EQ(p->spec.nics[0].vlan, 42);
  EXPECT_EQ(p->spec.nics[1].mode, NicMode::user);
  EXPECT_EQ(p->spec.nics[1].vlan, 0);
  // Nothing dropped silently.
  EXPECT_TRUE(mentions(p->unmapped, "cdrom"));
  EXPECT_TRUE(mentions(p->unmapped, "hostdev"));
  EXPECT_TRUE(mentions(p->unmapped, "nvram"));
  EXPECT_TRUE(mentions(p->unmapped, "network \"default\""));
  EXPECT_TRUE(mentions(p->unmapped, "uuid"));
  EXPECT_TRUE(mentions(p->unmapped, "cpu"));
}

TEST(LibvirtImport, NetworkMapMakesABridgeNic) {
  auto p = parse_libvirt_domain(kDomain, NetworkMap{{"default", "br-lan"}});
  ASSERT_TRUE(p) << p.error().to_string();
  ASSERT_EQ(p->spec.nics.size(), 2u);
  EXPECT_EQ(p->spec.nics[1].mode, NicMode::bridge);
  EXPECT_EQ(p->spec.nics[1].bridge, "br-lan");
  EXPECT_EQ(p->spec.nics[1].mac, "52:54:00:aa:bb:02");
  EXPECT_FALSE(mentions(p->unmapped, "network \"default\""));
}

TEST(LibvirtImport, AVlanTrunkIsNotKeptAndSaysSo) {
  for (const char* vlan : {"<vlan trunk='yes'><tag id='10'/><tag id='20'/></vlan>",
                           "<vlan><tag id='4095'/></vlan>", "<vlan><tag id='x'/></vlan>"}) {
    auto p = parse_libvirt_domain(
        std::string("<domain><name>v</name><memory unit='MiB'>64</memory><devices>"
                    "<disk type='file' device='disk'><source file='a.img'/></disk>"
                    "<interface type='bridge'><source bridge='br0'/>") +
        vlan + "</interface></devices></domain>");
    ASSERT_TRUE(p) << vlan << ": " << p.error().to_string();
    ASSERT_EQ(p->spec.nics.size(), 1u) << vlan;
    EXPECT_EQ(p->spec.nics[0].vlan, 0) << vlan;
    EXPECT_TRUE(mentions(p->unmapped, "interfaces[0].vlan")) << vlan;
  }
}

TEST(LibvirtImport, FirstDiskBootsWithoutBootOrderAndNameMayNeedAnOverride) {
  auto p = parse_libvirt_domain(R"(<domain type='kvm'><name>My VM</name>
    <memory unit='MiB'>64</memory><os><type machine='pc-i440fx-7.2'>hvm</type></os>
    <devices><disk type='file' device='disk'><source file='a.img'/><target dev='hda'/></disk>
    <disk type='file' device='disk'><source file='b.img'/><target dev='hda'/></disk>
    </devices></domain>)");
  ASSERT_TRUE(p) << p.error().to_string();
  EXPECT_EQ(p->descriptor_name, "My VM");
  EXPECT_EQ(p->spec.name, "");  // not a DNS label: the caller must name it
  EXPECT_EQ(p->spec.memory_mib, 64u);
  EXPECT_EQ(p->spec.vcpus, 1u);
  EXPECT_EQ(p->spec.machine, "pc");
  EXPECT_EQ(p->spec.firmware, Firmware::bios);
  ASSERT_EQ(p->disks.size(), 2u);
  EXPECT_TRUE(p->disks[0].boot);
  EXPECT_EQ(p->disks[0].name, "hda");
  EXPECT_EQ(p->disks[1].name, "disk1");  // target taken
  EXPECT_EQ(p->disks[0].format, "");     // not stated: detected (and judged) on the manager
}

TEST(LibvirtImport, UefiOnI440fxBecomesQ35AndSaysSo) {
  auto p = parse_libvirt_domain(R"(<domain type='kvm'><name>u</name><memory>65536</memory>
    <os><type machine='pc-i440fx-7.2'>hvm</type><loader readonly='yes' type='pflash'>/x</loader></os>
    <devices><disk type='file'><source file='/a'/></disk></devices></domain>)");
  ASSERT_TRUE(p) << p.error().to_string();
  EXPECT_EQ(p->spec.firmware, Firmware::uefi);
  EXPECT_EQ(p->spec.machine, "q35");
  EXPECT_TRUE(mentions(p->unmapped, "UEFI needs q35"));
  // With a base image per disk the plan is a valid spec.
  for (auto& d : p->spec.disks) d.base_image = "img";
  EXPECT_TRUE(validate(p->spec)) << validate(p->spec).error().to_string();
}

struct Refusal {
  const char* name;
  std::string xml;
  std::string field;
};

std::string domain_with(const std::string& inner) {
  return "<domain type='kvm'><name>x</name>" + inner + "</domain>";
}

TEST(LibvirtImport, RefusesHostileOrBrokenDomainsNamingTheField) {
  const std::string mem = "<memory unit='MiB'>64</memory>";
  std::vector<Refusal> cases = {
      {"empty", "", "descriptor"},
      {"not xml", "hello", "descriptor"},
      {"not a domain", "<network/>", "descriptor"},
      {"no name", "<domain><memory>65536</memory></domain>", "descriptor.name"},
      {"no memory", domain_with(""), "descriptor.memory"},
      {"memory not a number", domain_with("<memory>lots</memory>"), "descriptor.memory"},
      {"memory overflow", domain_with("<memory unit='TiB'>99999999999999999</memory>"),
       "descriptor.memory"},
      {"absurd memory", domain_with("<memory unit='TiB'>1000</memory>"), "descriptor.memory"},
      {"tiny memory", domain_with("<memory unit='KiB'>1024</memory>"), "descriptor.memory"},
      {"bad unit", domain_with("<memory unit='parsecs'>1</memory>"), "descriptor.memory.unit"},
      {"zero cpus", domain_with(mem + "<vcpu>0</vcpu>"), "descriptor.vcpu"},
      {"absurd cpus", domain_with(mem + "<vcpu>100000</vcpu>"), "descriptor.vcpu"},
      {"negative cpus", domain_with(mem + "<vcpu>-1</vcpu>"), "descriptor.vcpu"},
      {"xen", "<domain type='xen'><name>x</name>" + mem + "</domain>", "descriptor.type"},
      {"arm", domain_with(mem + "<os><type arch='aarch64'>hvm</type></os>"),
       "descriptor.os.type.arch"},
      {"disk without source",
       domain_with(mem + "<devices><disk type='file' device='disk'/></devices>"),
       "descriptor.disks[0].source"},
      {"source with newline",
       domain_with(mem + "<devices><disk type='file'><source file='/a&#10;b'/></disk></devices>"),
       "descriptor.disks[0].source"},
      {"vdi disk",
       domain_with(mem + "<devices><disk type='file'><driver type='vdi'/><source file='/a'/>"
                         "</disk></devices>"),
       "descriptor.disks[0].driver.type"},
      {"bad bridge",
       domain_with(mem + "<devices><interface type='bridge'><source bridge='br0;reboot'/>"
                         "</interface></devices>"),
       "descriptor.interfaces[0].source.bridge"},
      {"entity declaration",
       "<!DOCTYPE d [<!ENTITY a 'aaaaaaaaaa'><!ENTITY b '&a;&a;&a;&a;&a;&a;'>]>" +
           domain_with("<memory>&b;</memory>"),
       "descriptor"},
      {"external entity",
       "<!DOCTYPE d [<!ENTITY x SYSTEM 'file:///etc/shadow'>]><domain><name>&x;</name></domain>",
       "descriptor"},
      {"undeclared entity", domain_with("<memory>&x;</memory>"), "descriptor"},
      {"nul byte", std::string("<domain>\0</domain>", 18), "descriptor"},
      {"no disk",
       domain_with(mem + "<devices><disk type='block'><source dev='/dev/sda'/></disk>"
                         "</devices>"),
       "descriptor.disks"},
      {"too large",
       domain_with("<description>" + std::string(kMaxDescriptorBytes, 'a') + "</description>"),
       "descriptor"},
  };
  std::string many_disks;
  for (int i = 0; i < 17; ++i)
    many_disks += "<disk type='file'><source file='/d" + std::to_string(i) + "'/></disk>";
  cases.push_back({"too many disks", domain_with(mem + "<devices>" + many_disks + "</devices>"),
                   "descriptor.disks"});
  for (const auto& c : cases) {
    auto p = parse_libvirt_domain(c.xml);
    ASSERT_FALSE(p) << c.name;
    EXPECT_EQ(p.error().code, ErrorCode::invalid_argument) << c.name;
    EXPECT_EQ(p.error().field, c.field) << c.name << ": " << p.error().message;
    EXPECT_FALSE(p.error().message.empty()) << c.name;
  }
}

const char* kOvf = R"(<?xml version="1.0" encoding="UTF-8"?>
<Envelope vmw:buildId="build-123" xmlns="http://schemas.dmtf.org/ovf/envelope/1"
  xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1"
  xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData"
  xmlns:vmw="http://www.vmware.com/schema/ovf">
  <References>
    <File ovf:href="app-disk1.vmdk" ovf:id="file1" ovf:size="68096"/>
  </References>
  <DiskSection>
    <Info>Virtual disk information</Info>
    <Disk ovf:capacity="16" ovf:capacityAllocationUnits="byte * 2^20" ovf:diskId="vmdisk1"
      ovf:fileRef="file1" ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"/>
    <Disk ovf:capacity="1" ovf:capacityAllocationUnits="byte * 2^30" ovf:diskId="vmdisk2"/>
  </DiskSection>
  <NetworkSection><Network ovf:name="VM Network"/></NetworkSection>
  <VirtualSystem ovf:id="app">
    <Info>A virtual machine</Info>
    <Name>app</Name>
    <VirtualHardwareSection>
      <Item><rasd:AllocationUnits>hertz * 10^6</rasd:AllocationUnits>
        <rasd:ElementName>2 virtual CPU(s)</rasd:ElementName><rasd:InstanceID>1</rasd:InstanceID>
        <rasd:ResourceType>3</rasd:ResourceType><rasd:VirtualQuantity>2</rasd:VirtualQuantity></Item>
      <Item><rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits>
        <rasd:InstanceID>2</rasd:InstanceID><rasd:ResourceType>4</rasd:ResourceType>
        <rasd:VirtualQuantity>512</rasd:VirtualQuantity></Item>
      <Item><rasd:InstanceID>3</rasd:InstanceID><rasd:ResourceType>6</rasd:ResourceType></Item>
      <Item><rasd:HostResource>ovf:/disk/vmdisk1</rasd:HostResource>
        <rasd:InstanceID>4</rasd:InstanceID><rasd:ResourceType>17</rasd:ResourceType></Item>
      <Item><rasd:HostResource>ovf:/disk/vmdisk2</rasd:HostResource>
        <rasd:InstanceID>5</rasd:InstanceID><rasd:ResourceType>17</rasd:ResourceType></Item>
      <Item><rasd:AddressOnParent>7</rasd:AddressOnParent><rasd:Connection>VM Network</rasd:Connection>
        <rasd:InstanceID>6</rasd:InstanceID><rasd:ResourceType>10</rasd:ResourceType></Item>
      <Item><rasd:InstanceID>7</rasd:InstanceID><rasd:ResourceType>15</rasd:ResourceType></Item>
      <vmw:Config ovf:required="false" vmw:key="firmware" vmw:value="efi"/>
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>)";

TEST(OvfImport, MapsAnOvfAsOvftoolWritesIt) {
  auto p = parse_ovf(kOvf);
  ASSERT_TRUE(p) << p.error().to_string();
  EXPECT_EQ(p->spec.name, "app");
  EXPECT_EQ(p->spec.vcpus, 2u);
  EXPECT_EQ(p->spec.memory_mib, 512u);
  EXPECT_EQ(p->spec.firmware, Firmware::uefi);
  ASSERT_EQ(p->disks.size(), 2u);
  EXPECT_EQ(p->disks[0].source, "app-disk1.vmdk");
  EXPECT_EQ(p->disks[0].format, "vmdk");
  EXPECT_EQ(p->disks[0].capacity_bytes, 16u << 20);
  EXPECT_TRUE(p->disks[0].boot);
  EXPECT_EQ(p->disks[1].source, "");  // no file: a blank disk
  EXPECT_EQ(p->spec.disks[1].size_bytes, 1u << 30);
  EXPECT_EQ(p->spec.disks[0].name, "disk0");
  ASSERT_EQ(p->spec.nics.size(), 1u);
  EXPECT_EQ(p->spec.nics[0].mode, NicMode::user);
  EXPECT_TRUE(mentions(p->unmapped, "CD/DVD"));
  EXPECT_TRUE(mentions(p->unmapped, "VM Network"));
}

TEST(OvfImport, NetworkMapMakesABridgeNicAndGzipFilesAreTaken) {
  std::string ovf = kOvf;
  ovf.replace(ovf.find("ovf:size="), 0, "ovf:compression=\"gzip\" ");
  auto p = parse_ovf(ovf, NetworkMap{{"VM Network", "br-prod"}});
  ASSERT_TRUE(p) << p.error().to_string();
  EXPECT_EQ(p->disks[0].compression, "gzip");
  EXPECT_EQ(p->disks[0].file_size, 68096u);
  ASSERT_EQ(p->spec.nics.size(), 1u);
  EXPECT_EQ(p->spec.nics[0].mode, NicMode::bridge);
  EXPECT_EQ(p->spec.nics[0].bridge, "br-prod");
  EXPECT_FALSE(mentions(p->unmapped, "VM Network"));
  // Another network's mapping leaves this one user-mode, reported.
  auto q = parse_ovf(kOvf, NetworkMap{{"Other", "br-prod"}});
  ASSERT_TRUE(q) << q.error().to_string();
  EXPECT_EQ(q->disks[0].compression, "");
  EXPECT_EQ(q->spec.nics[0].mode, NicMode::user);
  EXPECT_TRUE(mentions(q->unmapped, "VM Network"));
}

TEST(OvfImport, SeveralVmsAreRefusedSayingSo) {
  auto p = parse_ovf(
      "<Envelope xmlns:ovf='o'><References/><VirtualSystemCollection ovf:id='c'>"
      "<VirtualSystem ovf:id='a'/><VirtualSystem ovf:id='b'/></VirtualSystemCollection>"
      "</Envelope>");
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().field, "descriptor.VirtualSystemCollection");
  EXPECT_NE(p.error().message.find("several VMs"), std::string::npos);
}

TEST(ImportNetworkMap, RefusesBadEntriesNamingTheField) {
  EXPECT_TRUE(validate_network_map("network_map", {}));
  EXPECT_TRUE(validate_network_map("network_map", {{"default", "br0"}, {"VM Network", "vmbr1"}}));
  auto bad_bridge = validate_network_map("network_map", {{"default", "br0;rm -rf"}});
  ASSERT_FALSE(bad_bridge);
  EXPECT_EQ(bad_bridge.error().field, "network_map.default");
  auto long_bridge = validate_network_map("network_map", {{"default", "a-bridge-name-too-long"}});
  ASSERT_FALSE(long_bridge);
  EXPECT_EQ(long_bridge.error().field, "network_map.default");
  auto empty_source = validate_network_map("network_map", {{"", "br0"}});
  ASSERT_FALSE(empty_source);
  EXPECT_EQ(empty_source.error().field, "network_map");
  auto control = validate_network_map("network_map", {{"a\nb", "br0"}});
  ASSERT_FALSE(control);
  EXPECT_EQ(control.error().field, "network_map");
  NetworkMap many;
  for (int i = 0; i < 17; ++i) many["n" + std::to_string(i)] = "br0";
  auto too_many = validate_network_map("network_map", many);
  ASSERT_FALSE(too_many);
  EXPECT_EQ(too_many.error().field, "network_map");
  // The parsers check the map too.
  auto p = parse_libvirt_domain(kDomain, {{"default", ""}});
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().field, "network_map.default");
}

std::string ovf_with(const std::string& refs, const std::string& disks, const std::string& items) {
  return "<Envelope xmlns:ovf='o' xmlns:rasd='r'><References>" + refs +
         "</References><DiskSection>" + disks +
         "</DiskSection><VirtualSystem ovf:id='v'><VirtualHardwareSection>" + items +
         "</VirtualHardwareSection></VirtualSystem></Envelope>";
}

TEST(OvfImport, RefusesHostileOrBrokenDescriptorsNamingTheField) {
  const std::string mem =
      "<Item><rasd:ResourceType>4</rasd:ResourceType><rasd:VirtualQuantity>64</"
      "rasd:VirtualQuantity></Item>";
  const std::string disk_item =
      "<Item><rasd:ResourceType>17</rasd:ResourceType><rasd:HostResource>ovf:/disk/d1</"
      "rasd:HostResource></Item>";
  auto file = [](const std::string& href) { return "<File ovf:id='f1' ovf:href='" + href + "'/>"; };
  const std::string disk = "<Disk ovf:diskId='d1' ovf:fileRef='f1' ovf:capacity='1048576'/>";
  std::vector<Refusal> cases = {
      {"not an envelope", "<domain/>", "descriptor"},
      {"traversal", ovf_with(file("../../etc/shadow"), disk, mem + disk_item),
       "descriptor.References.File[0].href"},
      {"absolute path", ovf_with(file("/etc/shadow"), disk, mem + disk_item),
       "descriptor.References.File[0].href"},
      {"dot dot", ovf_with(file(".."), disk, mem + disk_item),
       "descriptor.References.File[0].href"},
      {"backslash", ovf_with(file("..\\x.vmdk"), disk, mem + disk_item),
       "descriptor.References.File[0].href"},
      {"url", ovf_with(file("http://evil.example/d.vmdk"), disk, mem + disk_item),
       "descriptor.References.File[0].href"},
      {"control char", ovf_with(file("a&#127;b"), disk, mem + disk_item),
       "descriptor.References.File[0].href"},
      {"compressed other than gzip",
       ovf_with("<File ovf:id='f1' ovf:href='a.vmdk' ovf:compression='bzip2'/>", disk,
                mem + disk_item),
       "descriptor.References.File[0].compression"},
      {"chunked",
       ovf_with("<File ovf:id='f1' ovf:href='a.vmdk' ovf:chunkSize='1024'/>", disk,
                mem + disk_item),
       "descriptor.References.File[0].chunkSize"},
      {"size not a number",
       ovf_with("<File ovf:id='f1' ovf:href='a.vmdk' ovf:size='-1'/>", disk, mem + disk_item),
       "descriptor.References.File[0].size"},
      {"file without id", ovf_with("<File ovf:href='a.vmdk'/>", disk, mem),
       "descriptor.References.File[0].id"},
      {"disk names unknown file",
       ovf_with(file("a.vmdk"), "<Disk ovf:diskId='d1' ovf:fileRef='nope' ovf:capacity='1'/>", mem),
       "descriptor.DiskSection.Disk[0].fileRef"},
      {"absurd capacity",
       ovf_with(file("a.vmdk"),
                "<Disk ovf:diskId='d1' ovf:fileRef='f1' ovf:capacity='1000000' "
                "ovf:capacityAllocationUnits='byte * 2^40'/>",
                mem),
       "descriptor.DiskSection.Disk[0].capacity"},
      {"overflowing capacity",
       ovf_with(file("a.vmdk"),
                "<Disk ovf:diskId='d1' ovf:fileRef='f1' ovf:capacity='18446744073709551615' "
                "ovf:capacityAllocationUnits='byte * 2^30'/>",
                mem),
       "descriptor.DiskSection.Disk[0].capacity"},
      {"no capacity", ovf_with(file("a.vmdk"), "<Disk ovf:diskId='d1' ovf:fileRef='f1'/>", mem),
       "descriptor.DiskSection.Disk[0].capacity"},
      {"odd units",
       ovf_with(file("a.vmdk"),
                "<Disk ovf:diskId='d1' ovf:fileRef='f1' ovf:capacity='1' "
                "ovf:capacityAllocationUnits='furlongs'/>",
                mem),
       "descriptor.DiskSection.Disk[0].capacityAllocationUnits"},
      {"no memory", ovf_with(file("a.vmdk"), disk, disk_item), "descriptor.VirtualHardwareSection"},
      {"absurd memory",
       ovf_with(
           "", "",
           "<Item><rasd:ResourceType>4</rasd:ResourceType><rasd:AllocationUnits>byte * "
           "2^40</rasd:AllocationUnits><rasd:VirtualQuantity>999999</rasd:VirtualQuantity></Item>"),
       "descriptor.VirtualHardwareSection.Item[0].VirtualQuantity"},
      {"absurd cpus",
       ovf_with("", "",
                mem + "<Item><rasd:ResourceType>3</rasd:ResourceType><rasd:VirtualQuantity>99999"
                      "</rasd:VirtualQuantity></Item>"),
       "descriptor.VirtualHardwareSection.Item[1].VirtualQuantity"},
      {"item names unknown disk",
       ovf_with("", "",
                mem +
                    "<Item><rasd:ResourceType>17</rasd:ResourceType><rasd:HostResource>ovf:/disk/zz"
                    "</rasd:HostResource></Item>"),
       "descriptor.VirtualHardwareSection.Item[1].HostResource"},
      {"disk attached twice", ovf_with(file("a.vmdk"), disk, mem + disk_item + disk_item),
       "descriptor.VirtualHardwareSection.Item[2].HostResource"},
      {"no virtual system", "<Envelope/>", "descriptor.VirtualSystem"},
      {"entities", "<!DOCTYPE Envelope [<!ENTITY e SYSTEM '/etc/passwd'>]><Envelope>&e;</Envelope>",
       "descriptor"},
  };
  for (const auto& c : cases) {
    auto p = parse_ovf(c.xml);
    ASSERT_FALSE(p) << c.name;
    EXPECT_EQ(p.error().code, ErrorCode::invalid_argument) << c.name;
    EXPECT_EQ(p.error().field, c.field) << c.name << ": " << p.error().message;
  }
}

TEST(OvfImport, AllocationUnits) {
  EXPECT_EQ(parse_allocation_units("byte"), 1u);
  EXPECT_EQ(parse_allocation_units("byte * 2^30"), 1ull << 30);
  EXPECT_EQ(parse_allocation_units("MegaBytes"), 1ull << 20);
  EXPECT_FALSE(parse_allocation_units("byte * 2^64"));
  EXPECT_FALSE(parse_allocation_units("hertz * 10^6"));
}

TEST(ImportArchive, WrittenHeadersReadBack) {
  auto h = parse_tar_header(make_tar_header("disk-0", 12345), 0);
  ASSERT_TRUE(h) << h.error().to_string();
  EXPECT_EQ(h->kind, TarHeader::Kind::file);
  EXPECT_EQ(h->name, "disk-0");
  EXPECT_EQ(h->size, 12345u);
  auto big = parse_tar_header(make_tar_header("big.vmdk", 20ull << 30), 1);  // base-256
  ASSERT_TRUE(big) << big.error().to_string();
  EXPECT_EQ(big->size, 20ull << 30);
  std::array<unsigned char, 512> zero{};
  auto end = parse_tar_header(zero, 2);
  ASSERT_TRUE(end);
  EXPECT_EQ(end->kind, TarHeader::Kind::end);
}

std::array<unsigned char, 512> with_checksum(std::array<unsigned char, 512> b) {
  std::memset(b.data() + 148, ' ', 8);
  unsigned sum = 0;
  for (unsigned char c : b) sum += c;
  std::snprintf(reinterpret_cast<char*>(b.data()) + 148, 8, "%06o", sum);
  return b;
}

TEST(ImportArchive, RefusesLinksTraversalAndCorruptHeaders) {
  auto link = make_tar_header("disk.vmdk", 0);
  link[156] = '2';  // symlink
  std::strcpy(reinterpret_cast<char*>(link.data()) + 157, "/etc/shadow");
  auto r = parse_tar_header(with_checksum(link), 3);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().field, "archive.members[3].type");

  auto traversal = make_tar_header("x", 1);
  std::strcpy(reinterpret_cast<char*>(traversal.data()), "../../etc/cron.d/x");
  r = parse_tar_header(with_checksum(traversal), 0);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().field, "archive.members[0].name");

  auto corrupt = make_tar_header("x", 1);
  corrupt[0] = 'y';  // checksum no longer matches
  r = parse_tar_header(corrupt, 0);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().field, "archive.members[0]");

  auto huge = make_tar_header("x", 0);
  std::memcpy(huge.data() + 124, "77777777777", 11);  // 8 GiB - 1: fine
  EXPECT_TRUE(parse_tar_header(with_checksum(huge), 0));
  huge[124] = 0x80;
  std::memset(huge.data() + 125, 0xff, 11);  // 2^88 - 1
  r = parse_tar_header(with_checksum(huge), 0);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().field, "archive.members[0].size");
}

TEST(ImportArchive, PaxRecordsRenameAndResize) {
  TarHeader next;
  ASSERT_TRUE(apply_pax_records("15 path=a.vmdk\n16 size=1048576\n", next, 0));
  EXPECT_EQ(next.name, "a.vmdk");
  EXPECT_EQ(next.size, 1048576u);
  EXPECT_FALSE(apply_pax_records("19 path=../../etc/x\n", next, 0));
  EXPECT_FALSE(apply_pax_records("99 path=a\n", next, 0));
  EXPECT_FALSE(apply_pax_records("garbage", next, 0));
  EXPECT_FALSE(apply_pax_records("26 size=99999999999999999\n", next, 0));
}

TEST(ImportArchive, FormatNames) {
  EXPECT_EQ(import_format_from_string("ova"), ImportFormat::ova);
  EXPECT_EQ(import_format_from_string("libvirt"), ImportFormat::libvirt);
  EXPECT_FALSE(import_format_from_string("vmx"));
  EXPECT_EQ(libvirt_disk_member(3), "disk-3");
}

}  // namespace
}  // namespace strata::model
