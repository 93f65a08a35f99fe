// Parsing of ctl's compact flag syntaxes (sizes, --disk, --nic, --label) and printing of
// agent messages as tables or JSON.
#pragma once

#include <google/protobuf/message.h>

#include <cstdint>
#include <map>
#include <ostream>
#include <string>
#include <vector>

#include "strata/agent/v1/agent.pb.h"
#include "strata/common/error.h"
#include "strata/model/vm_spec.h"
#include "strata/wire/vm.h"

namespace strata::agent::cli {

// "1073741824", "512K", "1G", "10GiB" -> bytes (binary multiples).
Result<uint64_t> parse_size(const std::string& field, const std::string& text);
// "name=root,base=IMG,size=1G,boot,ro"
Result<model::DiskSpec> parse_disk_flag(const std::string& text);
// "user", "user,mac=52:54:00:..", "bridge=br0", "bridge=br0,mac=.."
Result<model::NicSpec> parse_nic_flag(const std::string& text);
// "key=value"
Result<std::pair<std::string, std::string>> parse_label_flag(const std::string& text);

std::string to_json_text(const google::protobuf::Message& m);
using wire::state_name;  // "running", "shutting_down", ... (one name for each state)
std::string human_bytes(uint64_t bytes);

void print_vm_table(std::ostream& out, const std::vector<const v1::VmStatus*>& vms);
void print_vm_details(std::ostream& out, const v1::VmStatus& vm);

}  // namespace strata::agent::cli
