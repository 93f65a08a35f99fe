// Store contract, part 3: the image catalog (unique names, field checks, CAS, paging,
// delete) on every backend.
#include <algorithm>

#include "store_contract.h"

namespace strata::store::testing {
namespace {

ImageRecord image_named(const std::string& name, const std::string& kind = "disk") {
  ImageRecord i;
  i.name = name;
  i.kind = kind;
  i.format = kind == "disk" ? "qcow2" : "raw";
  i.size_bytes = 1024;
  i.virtual_size = kind == "disk" ? 1 << 20 : 1024;
  i.sha256 = std::string(64, 'c');
  return i;
}

TEST_P(StoreContractTest, ImagesRoundTripAndNamesAreUnique) {
  auto a = store_->create_image(image_named("debian-12"));
  STORE_ASSERT_OK(a);
  EXPECT_FALSE(a->id.empty());
  EXPECT_EQ(a->resource_version, 1);
  EXPECT_EQ(a->state, "ready");
  auto got = store_->get_image_by_name("debian-12");
  STORE_ASSERT_OK(got);
  EXPECT_EQ(got->id, a->id);
  EXPECT_EQ(got->kind, "disk");
  EXPECT_EQ(got->format, "qcow2");
  EXPECT_EQ(got->size_bytes, 1024);
  EXPECT_EQ(got->virtual_size, 1 << 20);
  EXPECT_EQ(got->sha256, std::string(64, 'c'));
  EXPECT_EQ(store_->get_image(a->id)->name, "debian-12");
  STORE_ASSERT_CODE(store_->create_image(image_named("debian-12", "kernel")),
                    ErrorCode::already_exists);
  STORE_ASSERT_CODE(store_->get_image_by_name("nope"), ErrorCode::not_found);

  STORE_ASSERT_OK(store_->create_image(image_named("vmlinuz", "kernel")));
  STORE_ASSERT_OK(store_->create_image(image_named("initrd", "initrd")));
  auto all = store_->list_images({});
  STORE_ASSERT_OK(all);
  ASSERT_EQ(all->size(), 3u);
  ImageListOptions page;
  page.limit = 2;
  auto p1 = store_->list_images(page);
  STORE_ASSERT_OK(p1);
  ASSERT_EQ(p1->size(), 2u);
  page.after_id = p1->back().id;
  auto p2 = store_->list_images(page);
  STORE_ASSERT_OK(p2);
  ASSERT_EQ(p2->size(), 1u);
  EXPECT_EQ(p2->front().name, all->back().name);
}

TEST_P(StoreContractTest, ImagesValidateCasAndDelete) {
  auto bad = image_named("x");
  bad.kind = "floppy";
  STORE_ASSERT_CODE(store_->create_image(bad), ErrorCode::invalid_argument);
  EXPECT_EQ(store_->create_image(bad).error().field, "kind");
  bad = image_named("x", "iso");  // an iso is a raw file, like a kernel
  bad.format = "qcow2";
  EXPECT_EQ(store_->create_image(bad).error().field, "format");
  bad = image_named("x");
  bad.format = "vmdk";
  EXPECT_EQ(store_->create_image(bad).error().field, "format");
  bad = image_named("x", "kernel");
  bad.format = "qcow2";
  EXPECT_EQ(store_->create_image(bad).error().field, "format");
  bad = image_named("x");
  bad.sha256 = "ABC";
  EXPECT_EQ(store_->create_image(bad).error().field, "sha256");
  bad = image_named("");
  EXPECT_EQ(store_->create_image(bad).error().field, "name");
  bad = image_named("x");
  bad.size_bytes = -1;
  EXPECT_EQ(store_->create_image(bad).error().field, "size_bytes");
  auto none = store_->list_images({});
  STORE_ASSERT_OK(none);
  EXPECT_TRUE(none->empty());

  auto img = store_->create_image(image_named("base"));
  STORE_ASSERT_OK(img);
  ImageRecord del = *img;
  del.state = "deleting";
  auto upd = store_->update_image(del);
  STORE_ASSERT_OK(upd);
  EXPECT_EQ(upd->resource_version, 2);
  EXPECT_EQ(upd->state, "deleting");
  STORE_ASSERT_CODE(store_->update_image(del), ErrorCode::conflict);
  STORE_ASSERT_CODE(store_->delete_image(img->id, 1), ErrorCode::conflict);
  STORE_ASSERT_OK(store_->delete_image(img->id, 2));
  STORE_ASSERT_CODE(store_->delete_image(img->id, std::nullopt), ErrorCode::not_found);
  STORE_ASSERT_CODE(store_->get_image(img->id), ErrorCode::not_found);
  // The name is free again.
  STORE_ASSERT_OK(store_->create_image(image_named("base")));
}

// The image list's name filter (the console's search): a case-insensitive substring, LIKE's
// wildcards taken literally, names with capitals found by a lowercase needle and back,
// combinable with paging.
TEST_P(StoreContractTest, ImagesByNameSubstring) {
  for (const char* n : {"Debian-12", "debian-11", "ubuntu-24.04", "web_1", "web-x", "50%off"})
    STORE_ASSERT_OK(store_->create_image(image_named(n)));
  auto names = [&](ImageListOptions o) {
    std::vector<std::string> out;
    for (;;) {
      auto r = store_->list_images(o);
      EXPECT_TRUE(r.has_value());
      if (!r) return out;
      for (const auto& i : *r) out.push_back(i.name);
      if (o.limit == 0 || static_cast<int>(r->size()) < o.limit) break;
      o.after_id = r->back().id;
    }
    std::sort(out.begin(), out.end());
    return out;
  };
  ImageListOptions o;
  o.name_contains = "debian";
  EXPECT_EQ(names(o), (std::vector<std::string>{"Debian-12", "debian-11"}));
  o.name_contains = "DEBIAN-1";
  o.limit = 1;
  EXPECT_EQ(names(o), (std::vector<std::string>{"Debian-12", "debian-11"}));
  o.limit = 0;
  o.name_contains = "24.0";
  EXPECT_EQ(names(o), (std::vector<std::string>{"ubuntu-24.04"}));
  o.name_contains = "_";
  EXPECT_EQ(names(o), (std::vector<std::string>{"web_1"}));
  o.name_contains = "%";
  EXPECT_EQ(names(o), (std::vector<std::string>{"50%off"}));
  o.name_contains = "b-";  // '-' is no wildcard; "web_1" does not hold it
  EXPECT_EQ(names(o), (std::vector<std::string>{"web-x"}));
  o.name_contains = "nothing";
  EXPECT_TRUE(names(o).empty());
  EXPECT_EQ(names({}).size(), 6u);
}

}  // namespace
}  // namespace strata::store::testing
