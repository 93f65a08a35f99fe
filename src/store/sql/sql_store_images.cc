// SqlStore, part 3: the image catalog (metadata only; the bytes live in the manager's
// data folder). Field checks, row decoding and CAS updates for the `images` table.
#include "store/sql/codec.h"
#include "store/sql/paging.h"
#include "store/sql/sql_store.h"
#include "strata/common/sha256.h"

namespace strata::store::sql {

namespace {

constexpr const char* kImageCols =
    "id, resource_version, created_ms, updated_ms, name, kind, format, size_bytes, "
    "virtual_size, sha256, state";

Result<ImageRecord> decode_image(const SqlRow& r) {
  ImageRecord i;
  i.id = r.text(0);
  i.resource_version = r.int64(1);
  i.created_ms = r.int64(2);
  i.updated_ms = r.int64(3);
  i.name = r.text(4);
  i.kind = r.text(5);
  i.format = r.text(6);
  i.size_bytes = r.int64(7);
  i.virtual_size = r.int64(8);
  i.sha256 = r.text(9);
  i.state = r.text(10);
  return i;
}

Status validate_image(const ImageRecord& i) {
  if (i.name.empty()) return invalid_argument("name", "image name is required");
  if (i.kind != "disk" && i.kind != "kernel" && i.kind != "initrd" && i.kind != "iso")
    return invalid_argument("kind", "image kind must be disk|kernel|initrd|iso");
  if (i.format != "qcow2" && i.format != "raw")
    return invalid_argument("format", "image format must be qcow2|raw");
  if (i.kind != "disk" && i.format != "raw")
    return invalid_argument("format", "kernel, initrd and iso images are raw files");
  if (i.size_bytes < 0) return invalid_argument("size_bytes", "must be >= 0");
  if (i.virtual_size < 0) return invalid_argument("virtual_size", "must be >= 0");
  if (!is_sha256_hex(i.sha256))
    return invalid_argument("sha256", "must be 64 lowercase hex characters");
  if (i.state != "ready" && i.state != "deleting")
    return invalid_argument("state", "image state must be ready|deleting");
  return {};
}

Result<ImageRecord> first_image(Result<SqlRows> rows, const std::string& what) {
  if (!rows) return tl::unexpected(rows.error());
  if (rows->empty()) return not_found(what + " not found");
  return decode_image(rows->front());
}

}  // namespace

Result<ImageRecord> SqlStore::create_image(const ImageRecord& in) {
  if (auto st = validate_image(in); !st) return tl::unexpected(st.error());
  ImageRecord i = in;
  int64_t now = now_ms();
  if (i.id.empty()) i.id = new_uuid_v7(now);
  i.resource_version = 1;
  i.created_ms = i.updated_ms = now;
  auto r = with_conn([&](SqlConnection& c) {
    return c.exec(
        "INSERT INTO images (id, resource_version, created_ms, updated_ms, name, kind, format, "
        "size_bytes, virtual_size, sha256, state) VALUES "
        "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        {i.id, i.resource_version, i.created_ms, i.updated_ms, i.name, i.kind, i.format,
         i.size_bytes, i.virtual_size, i.sha256, i.state});
  });
  if (!r) return tl::unexpected(r.error().wrap("create image " + i.name));
  return i;
}

Result<ImageRecord> SqlStore::get_image(const std::string& id) {
  return with_conn(
      [&](SqlConnection& c) {
        return first_image(
            c.query(std::string("SELECT ") + kImageCols + " FROM images WHERE id = $1", {id}),
            "image " + id);
      },
      true);
}

Result<ImageRecord> SqlStore::get_image_by_name(const std::string& name) {
  return with_conn(
      [&](SqlConnection& c) {
        return first_image(
            c.query(std::string("SELECT ") + kImageCols + " FROM images WHERE name = $1", {name}),
            "image named " + name);
      },
      true);
}

Result<std::vector<ImageRecord>> SqlStore::list_images(const ImageListOptions& o) {
  std::vector<std::string> conds;
  SqlParams params;
  if (!o.name_contains.empty())
    conds.push_back(name_contains_condition("LOWER(name)", o.name_contains, params));
  return with_conn(
      [&](SqlConnection& c) {
        return select_paged<ImageRecord>(c, kImageCols, "images", conds, params, o.after_id,
                                         o.limit, Labels{}, decode_image);
      },
      true);
}

Result<ImageRecord> SqlStore::update_image(const ImageRecord& i) {
  if (auto st = validate_image(i); !st) return tl::unexpected(st.error());
  return with_conn([&](SqlConnection& c) -> Result<ImageRecord> {
    auto rows = c.query(
        "UPDATE images SET state = $1, updated_ms = $2, resource_version = resource_version + 1 "
        "WHERE id = $3 AND resource_version = $4 RETURNING " +
            std::string(kImageCols),
        {i.state, now_ms(), i.id, i.resource_version});
    if (!rows) return tl::unexpected(rows.error().wrap("update image " + i.id));
    if (rows->empty())
      return tl::unexpected(version_miss(c, "images", "image", i.id, i.resource_version));
    return decode_image(rows->front());
  });
}

Status SqlStore::delete_image(const std::string& id, std::optional<int64_t> expected_version) {
  return delete_versioned("images", "image", id, expected_version);
}

}  // namespace strata::store::sql
