// Token hashing, bearer parsing, role checks and authentication on a real SQLite store.
#include "strata/manager/auth/tokens.h"

#include <gtest/gtest.h>

namespace strata::manager {
namespace {

TEST(Tokens, Sha256HexOfKnownInput) {
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Tokens, GeneratedSecretsAreDistinctAndPrefixed) {
  auto a = generate_secret("sta_"), b = generate_secret("sta_");
  ASSERT_TRUE(a && b);
  EXPECT_NE(*a, *b);
  EXPECT_EQ(a->rfind("sta_", 0), 0u);
  EXPECT_EQ(a->size(), 4u + 64u);
}

TEST(Tokens, BearerParsing) {
  EXPECT_EQ(bearer_token("Bearer abc"), "abc");
  EXPECT_EQ(bearer_token("bearer   abc  "), "abc");
  EXPECT_FALSE(bearer_token("Basic abc"));
  EXPECT_FALSE(bearer_token("Bearer "));
  EXPECT_FALSE(bearer_token(""));
}

TEST(Tokens, AuthorizeByRole) {
  EXPECT_EQ(authorize(std::nullopt, Role::viewer).error().code, ErrorCode::unauthenticated);
  Principal viewer{"1", "v", Role::viewer}, op{"2", "o", Role::operator_}, admin{"3", "a", Role::admin};
  EXPECT_TRUE(authorize(viewer, Role::viewer));
  EXPECT_EQ(authorize(viewer, Role::operator_).error().code, ErrorCode::permission_denied);
  EXPECT_TRUE(authorize(op, Role::operator_));
  EXPECT_EQ(authorize(op, Role::admin).error().code, ErrorCode::permission_denied);
  EXPECT_TRUE(authorize(admin, Role::admin));
  EXPECT_TRUE(authorize(admin, Role::viewer));
}

TEST(Tokens, BootstrapThenAuthenticateRevokeExpire) {
  auto clock = std::make_shared<ManualClock>();
  clock->advance(std::chrono::hours(24 * 365 * 50));  // a plausible unix time
  auto store = store::open_store("sqlite::memory:", store::StoreOptions{clock, 1});
  ASSERT_TRUE(store) << store.error().to_string();
  auto secret = bootstrap_admin_token(**store, "admin");
  ASSERT_TRUE(secret && *secret);
  auto again = bootstrap_admin_token(**store, "admin");
  ASSERT_TRUE(again);
  EXPECT_FALSE(*again) << "second start must not create another admin token";

  TokenAuthenticator auth(**store, clock);
  auto p = auth.authenticate("Bearer " + **secret);
  ASSERT_TRUE(p) << p.error().to_string();
  EXPECT_EQ(p->role, Role::admin);
  EXPECT_EQ(p->name, "admin");
  EXPECT_EQ(auth.authenticate("Bearer sta_wrong").error().code, ErrorCode::unauthenticated);
  EXPECT_EQ(auth.authenticate("").error().code, ErrorCode::unauthenticated);

  store::TokenRecord rec;
  rec.name = "short";
  rec.role = "viewer";
  rec.secret_hash = sha256_hex("sta_short");
  rec.expires_ms = unix_ms(*clock) + 1000;
  auto created = (*store)->create_token(rec);
  ASSERT_TRUE(created);
  EXPECT_TRUE(auth.authenticate("Bearer sta_short"));
  clock->advance(std::chrono::seconds(2));
  EXPECT_EQ(auth.authenticate("Bearer sta_short").error().message, "token expired");
  ASSERT_TRUE((*store)->revoke_token(p->token_id));
  EXPECT_EQ(auth.authenticate("Bearer " + **secret).error().message, "token revoked");
}

}  // namespace
}  // namespace strata::manager
