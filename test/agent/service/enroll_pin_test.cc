// The agent's CA pin at enrollment (--ca-fingerprint): the CA a manager sends must be the
// one the operator pinned, or the agent stores nothing and does not serve.
#include <gtest/gtest.h>

#include "enroll.h"
#include "strata/pki/certificate_authority.h"
#include "strata/pki/pki.h"

namespace strata::agent::cli {
namespace {

TEST(EnrollPin, OnlyThePinnedCaIsTrusted) {
  auto manager_ca = pki::CertificateAuthority::create("Strata manager CA");
  auto rogue_ca = pki::CertificateAuthority::create("Strata manager CA");  // same name
  ASSERT_TRUE(manager_ca && rogue_ca);
  auto pin = pki::cert_fingerprint(manager_ca->cert_pem());
  ASSERT_TRUE(pin);

  EXPECT_TRUE(check_ca_fingerprint(manager_ca->cert_pem(), *pin));
  auto refused = check_ca_fingerprint(rogue_ca->cert_pem(), *pin);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, ErrorCode::unauthenticated);
  EXPECT_NE(refused.error().message.find("refusing to trust"), std::string::npos);
  EXPECT_NE(refused.error().message.find(*pin), std::string::npos);  // says what was expected
  // Garbage instead of a CA is an error too, never a pass.
  EXPECT_FALSE(check_ca_fingerprint("not a certificate", *pin));
  // No pin: trust on first use (the agent logs a warning).
  EXPECT_TRUE(check_ca_fingerprint(rogue_ca->cert_pem(), ""));
}

}  // namespace
}  // namespace strata::agent::cli
