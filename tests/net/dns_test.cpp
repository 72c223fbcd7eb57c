// Name resolution on the executor, and SocketAddress.

#include "weave/net/dns.hpp"
// ^ first, on its own: proves the header under test is self-contained

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <system_error>

#include "weave/cancel_scope.hpp"
#include "weave/executor.hpp"
#include "weave/loop.hpp"
#include "weave/task.hpp"

namespace {

using namespace std::chrono_literals;
using weave::net::SocketAddress;

TEST(SocketAddress, ParsesAndPrintsIpv4AndIpv6) {
  auto a = SocketAddress::parse("127.0.0.1", 8080);
  EXPECT_EQ(a.family(), AF_INET);
  EXPECT_EQ(a.port(), 8080);
  EXPECT_EQ(a.host(), "127.0.0.1");
  EXPECT_EQ(a.to_string(), "127.0.0.1:8080");
  auto b = SocketAddress::parse("::1", 443);
  EXPECT_EQ(b.family(), AF_INET6);
  EXPECT_EQ(b.to_string(), "[::1]:443");
  EXPECT_EQ(SocketAddress::parse("[::1]", 1).host(), "::1");
  EXPECT_EQ(b.with_port(80).port(), 80);
  EXPECT_EQ(SocketAddress::ipv4_any(5).to_string(), "0.0.0.0:5");
  EXPECT_EQ(SocketAddress::ipv4_loopback(5), SocketAddress::parse("127.0.0.1", 5));
  EXPECT_THROW(SocketAddress::parse("localhost", 1), std::invalid_argument);
  EXPECT_THROW(SocketAddress::parse("", 1), std::invalid_argument);
  SocketAddress out;
  EXPECT_FALSE(SocketAddress::try_parse("1.2.3", 1, out));
  EXPECT_EQ(SocketAddress().family(), AF_UNSPEC);
  EXPECT_EQ(SocketAddress().to_string(), "");
}

TEST(SocketAddress, UnixPaths) {
  auto u = SocketAddress::unix_path("/tmp/x.sock");
  EXPECT_EQ(u.family(), AF_UNIX);
  EXPECT_EQ(u.to_string(), "/tmp/x.sock");
  EXPECT_FALSE(u.is_abstract());
  auto ab = SocketAddress::unix_path("@name");
  EXPECT_TRUE(ab.is_abstract());
  EXPECT_EQ(ab.to_string(), "@name");
  EXPECT_THROW(SocketAddress::unix_path(""), std::invalid_argument);
  EXPECT_THROW(SocketAddress::unix_path(std::string(108, 'x')), std::invalid_argument);
}

TEST(Dns, LocalhostResolvesOnTheExecutor) {
  weave::Loop loop;
  auto t = loop.spawn([] {
    auto all = weave::net::getaddrinfo("localhost", "8080");
    EXPECT_FALSE(all.empty());
    for (const auto& ai : all) {
      EXPECT_EQ(ai.socktype, SOCK_STREAM);
      EXPECT_EQ(ai.address.port(), 8080);
      EXPECT_TRUE(ai.address.host() == "127.0.0.1" || ai.address.host() == "::1")
          << ai.address.host();
    }
    auto v4 = weave::net::resolve("localhost", 1, {AF_INET, SOCK_STREAM, 0});
    ASSERT_FALSE(v4.empty());
    EXPECT_EQ(v4[0].to_string(), "127.0.0.1:1");
    // A numeric address needs no lookup; "::1" works whether or not the host has IPv6.
    auto six = weave::net::resolve("::1", 2);
    ASSERT_EQ(six.size(), 1u);
    EXPECT_EQ(six[0].family(), AF_INET6);
    // A service name.
    auto http = weave::net::getaddrinfo("127.0.0.1", "http");
    ASSERT_FALSE(http.empty());
    EXPECT_EQ(http[0].address.port(), 80);
  });
  loop.run_until_complete(t);
}

TEST(Dns, ErrorsAreInTheResolversCategory) {
  weave::Loop loop;
  auto t = loop.spawn([] {
    try {
      weave::net::getaddrinfo("not-an-address", "80", {AF_UNSPEC, SOCK_STREAM, AI_NUMERICHOST});
      ADD_FAILURE() << "resolved";
    } catch (const std::system_error& e) {
      EXPECT_EQ(e.code().category(), weave::net::gai_category());
      EXPECT_EQ(e.code().value(), EAI_NONAME);
      EXPECT_NE(std::string(e.what()).find("not-an-address"), std::string::npos);
    }
  });
  loop.run_until_complete(t);
}

TEST(Dns, ALookupIsCancellable) {
  weave::Loop loop;
  // Occupy every thread of the default executor, so the lookup cannot even start. The gate
  // is shared with the jobs: they may still be waking up after the test returns.
  struct Gate {
    std::mutex m;
    std::condition_variable cv;
    bool open = false;
  };
  auto gate = std::make_shared<Gate>();
  auto& pool = weave::default_executor();
  for (std::size_t i = 0; i < pool.size(); ++i)
    pool.submit([gate] {
      std::unique_lock lock(gate->m);
      gate->cv.wait(lock, [&] { return gate->open; });
    });
  auto t = loop.spawn([] {
    return weave::move_on_after(20ms, [] { return weave::net::getaddrinfo("localhost", "80"); });
  });
  auto result = loop.run_until_complete(t);
  EXPECT_FALSE(result.has_value());  // gave up; the loop was not blocked
  {
    std::lock_guard lock(gate->m);
    gate->open = true;
  }
  gate->cv.notify_all();
}

TEST(Dns, OutsideAFiberItResolvesInPlaceUnlessALoopRuns) {
  weave::Loop loop;
  auto all = weave::net::resolve("localhost", 7);
  EXPECT_FALSE(all.empty());
  std::string error;
  loop.call_soon([&] {
    try {
      weave::net::getaddrinfo("localhost", "7");
    } catch (const std::logic_error& e) {
      error = e.what();
    }
  });
  loop.run();
  EXPECT_NE(error.find("fiber"), std::string::npos);
}

}  // namespace
