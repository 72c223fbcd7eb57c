// weave::net::UdpSocket: datagrams, connected mode, errors, cancellation.

#include "weave/net/udp.hpp"
// ^ first, on its own: proves the header under test is self-contained

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <system_error>
#include <vector>

#include "net_test_util.hpp"
#include "virtual_time.hpp"
#include "weave/cancel_scope.hpp"
#include "weave/loop.hpp"
#include "weave/task.hpp"
#include "weave/this_fiber.hpp"

namespace {

using namespace std::chrono_literals;
using weave::net::SocketAddress;
using weave::net::UdpSocket;

template <class F>
void run(F body) {
  weave::ManualClock clock;
  weave::Loop loop(weave_test::manual_time(clock));
  int before = weave_test::open_fd_count();
  {
    auto t = loop.spawn(body);
    weave_test::run_all(loop);
    ASSERT_TRUE(t.done());
    t.get();
  }
  EXPECT_EQ(loop.live_fibers(), 0u);
  EXPECT_EQ(weave_test::open_fd_count(), before) << "an fd leaked";
}

TEST(Udp, EchoWithSendToAndRecvFrom) {
  run([] {
    UdpSocket server = UdpSocket::bind("127.0.0.1", 0);
    auto port = server.local_address().port();
    ASSERT_NE(port, 0);
    auto echo = weave::spawn([&] {
      char buf[1500];
      for (int i = 0; i < 3; ++i) {
        auto d = server.recv_from(buf);
        server.send_to(std::string_view(buf, d.size), d.from);
      }
    });
    UdpSocket client = UdpSocket::open();
    char buf[1500];
    for (std::string msg : {"one", "two", "three"}) {
      EXPECT_EQ(client.send_to(msg, SocketAddress::ipv4_loopback(port)), msg.size());
      auto d = client.recv_from(buf);
      EXPECT_EQ(std::string(buf, d.size), msg);
      EXPECT_EQ(d.from.port(), port);
      EXPECT_FALSE(d.truncated);
    }
    echo.get();
  });
}

TEST(Udp, ConnectedModeTalksToOnePeer) {
  run([] {
    UdpSocket server = UdpSocket::bind("127.0.0.1", 0);
    UdpSocket client = UdpSocket::connect(server.local_address());
    EXPECT_EQ(client.peer_address(), server.local_address());
    client.send("hello");
    char buf[64];
    auto d = server.recv_from(buf);
    EXPECT_EQ(std::string(buf, d.size), "hello");
    EXPECT_EQ(d.from, client.local_address());
    server.send_to("back", d.from);
    auto r = client.recv(buf);
    EXPECT_EQ(std::string(buf, r.size), "back");
  });
}

TEST(Udp, ConnectedSocketReportsARefusedPeer) {
  run([] {
    // Bind a port, then free it: nobody listens there any more.
    SocketAddress dead = UdpSocket::bind("127.0.0.1", 0).local_address();
    UdpSocket client = UdpSocket::connect(dead);
    client.send("anyone?");
    char buf[64];
    try {
      client.recv(buf);
      ADD_FAILURE() << "received";
    } catch (const std::system_error& e) {
      EXPECT_EQ(e.code().value(), ECONNREFUSED);
    }
  });
}

TEST(Udp, ALargerDatagramThanTheBufferIsTruncatedAndSaysSo) {
  run([] {
    UdpSocket server = UdpSocket::bind("127.0.0.1", 0);
    UdpSocket client = UdpSocket::open();
    client.send_to(weave_test::pattern(1000), server.local_address());
    char buf[10];
    auto d = server.recv_from(buf);
    EXPECT_EQ(d.size, 10u);
    EXPECT_TRUE(d.truncated);
    EXPECT_EQ(std::string(buf, 10), weave_test::pattern(10));
  });
}

TEST(Udp, CancelledReceiveTakesNoDatagram) {
  run([] {
    UdpSocket server = UdpSocket::bind("127.0.0.1", 0);
    char buf[64];
    EXPECT_TRUE(weave::move_on_after(1s, [&] { server.recv_from(buf); }));
    UdpSocket::open().send_to("after", server.local_address());
    auto d = server.recv_from(buf);
    EXPECT_EQ(std::string(buf, d.size), "after");
  });
}

TEST(Udp, CloseWakesAReceiverWithEbadf) {
  run([] {
    UdpSocket server = UdpSocket::bind("127.0.0.1", 0);
    auto receiver = weave::spawn([&] {
      char buf[64];
      try {
        server.recv_from(buf);
        ADD_FAILURE() << "received";
      } catch (const std::system_error& e) {
        EXPECT_EQ(e.code().value(), EBADF);
      }
    });
    weave::this_fiber::yield();
    server.close();
    receiver.get();
    EXPECT_FALSE(server.valid());
    char buf[4];
    EXPECT_THROW(server.recv_from(buf), std::system_error);
    UdpSocket empty;
    EXPECT_THROW(empty.send_to("x", SocketAddress::ipv4_loopback(9)), std::logic_error);
  });
}

TEST(Udp, Ipv6WhenTheHostHasIt) {
  run([] {
    UdpSocket server;
    try {
      server = UdpSocket::bind("::1", 0);
    } catch (const std::system_error&) {
      GTEST_SKIP() << "no IPv6 loopback here";
    }
    UdpSocket client = UdpSocket::open(AF_INET6);
    client.send_to("six", server.local_address());
    char buf[8];
    auto d = server.recv_from(buf);
    EXPECT_EQ(std::string(buf, d.size), "six");
    EXPECT_EQ(d.from.family(), AF_INET6);
  });
}

}  // namespace
