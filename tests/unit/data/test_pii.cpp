#include <gtest/gtest.h>

#include "strata/data/pii.hpp"

using namespace strata::data;

namespace {
std::string scrub(std::string s, PiiCounts* c = nullptr) {
  const PiiCounts counts = scrub_pii(s);
  if (c) *c = counts;
  return s;
}
}  // namespace

TEST(Pii, EmailAddressesAreReplaced) {
  PiiCounts c;
  EXPECT_EQ(scrub("write to john.doe+list@mail.example.co.uk, or to a_b@x.org.", &c),
            "write to <EMAIL>, or to <EMAIL>.");
  EXPECT_EQ(c.emails, 2u);
  EXPECT_EQ(scrub("not an address: user@localhost, @twitter, a@b.c"),
            "not an address: user@localhost, @twitter, a@b.c");
}

TEST(Pii, Ipv4AddressesAreReplacedButNotVersionsOrOutOfRangeOctets) {
  PiiCounts c;
  EXPECT_EQ(scrub("server 192.168.1.20 and 10.0.0.1:8080 up", &c),
            "server <IP_ADDRESS> and <IP_ADDRESS>:8080 up");
  EXPECT_EQ(c.ipv4, 2u);
  EXPECT_EQ(scrub("version 1.2.3.4.5 and 300.1.1.1 and 3.14"), "version 1.2.3.4.5 and 300.1.1.1 and 3.14");
}

TEST(Pii, Ipv6AddressesAreReplacedButNotTimesOrScopes) {
  PiiCounts c;
  EXPECT_EQ(scrub("host 2001:0db8:85a3:0000:0000:8a2e:0370:7334 and fe80::1ff:fe23:4567:890a, ok", &c),
            "host <IP_ADDRESS> and <IP_ADDRESS>, ok");
  EXPECT_EQ(c.ipv6, 2u);
  EXPECT_EQ(scrub("at 10:30:00, std::vector, a::b, John 3:16"), "at 10:30:00, std::vector, a::b, John 3:16");
}

TEST(Pii, PhoneNumbersAreReplacedButNotDatesOrPlainNumbers) {
  PiiCounts c;
  EXPECT_EQ(scrub("call 555-123-4567, (555) 123-4567 or +44 20 7946 0958 today", &c),
            "call <PHONE>, <PHONE> or <PHONE> today");
  EXPECT_EQ(c.phones, 3u);
  EXPECT_EQ(scrub("on 2021-01-01, in 1999, id 12345678901, pi 3.14159"),
            "on 2021-01-01, in 1999, id 12345678901, pi 3.14159");
}

TEST(Pii, TextWithoutPiiIsUnchanged) {
  PiiCounts c;
  const std::string s = "In the beginning God created the heaven and the earth. (Genesis 1:1)";
  EXPECT_EQ(scrub(s, &c), s);
  EXPECT_EQ(c.total(), 0u);
}
