// weave::net::start_server, Server and open_connection over TCP.

#include "weave/net/server.hpp"
// ^ first, on its own: proves the header under test is self-contained

#include <gtest/gtest.h>
#include <sys/socket.h>

#include <chrono>
#include <string>
#include <system_error>
#include <vector>

#include "net_test_util.hpp"
#include "virtual_time.hpp"
#include "weave/cancel_scope.hpp"
#include "weave/errors.hpp"
#include "weave/executor.hpp"
#include "weave/gather.hpp"
#include "weave/loop.hpp"
#include "weave/net/dns.hpp"
#include "weave/net/stream.hpp"
#include "weave/task.hpp"
#include "weave/this_fiber.hpp"

namespace {

using namespace std::chrono_literals;
using weave::net::Server;
using weave::net::Stream;

void echo_lines(Stream& s) {
  for (const std::string& line : s.lines()) {
    s.write(line + "\n");
    s.drain();
  }
}

// Runs `body` in a fiber on a virtual-time loop and checks that no fd or fiber is left.
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

// The same on real time: name resolution runs on the executor's threads, which virtual time
// cannot wait for (it would jump ahead while the resolver works).
template <class F>
void run_real_time(F body) {
  weave::Loop loop;
  int before = weave_test::open_fd_count();
  {
    auto t = loop.spawn(body);
    loop.run_until_complete(t);
    loop.run();  // what the body left to finish (handlers, acceptors)
  }
  EXPECT_EQ(loop.live_fibers(), 0u);
  EXPECT_EQ(weave_test::open_fd_count(), before) << "an fd leaked";
}

TEST(Server, EchoesOnTheKernelChosenPort) {
  run([] {
    Server server = weave::net::start_server(echo_lines, "127.0.0.1", 0);
    ASSERT_NE(server.port(), 0);
    EXPECT_TRUE(server.is_serving());
    ASSERT_EQ(server.addresses().size(), 1u);
    EXPECT_EQ(server.addresses()[0].to_string(), "127.0.0.1:" + std::to_string(server.port()));
    Stream c = weave::net::open_connection("127.0.0.1", server.port());
    c.write("hello\n");
    EXPECT_EQ(c.read_line(), "hello\n");
    c.close();
    server.close();
    EXPECT_FALSE(server.is_serving());
    server.wait_closed();
    EXPECT_EQ(server.accepted_count(), 1u);
    EXPECT_EQ(server.connection_count(), 0u);
  });
}

TEST(Server, EachConnectionRunsInItsOwnFiber) {
  run([] {
    // The handler blocks on its connection; ten clients are served at once.
    Server server = weave::net::start_server(echo_lines, "127.0.0.1", 0);
    std::vector<Stream> clients;
    for (int i = 0; i < 10; ++i)
      clients.push_back(weave::net::open_connection("127.0.0.1", server.port()));
    for (int i = 9; i >= 0; --i) clients[i].write("client " + std::to_string(i) + "\n");
    for (int i = 0; i < 10; ++i)
      EXPECT_EQ(clients[i].read_line(), "client " + std::to_string(i) + "\n");
    EXPECT_EQ(server.connection_count(), 10u);
    clients.clear();
    server.close();
    server.wait_closed();
  });
}

TEST(Server, HandlerTakingTheStreamByValueOwnsIt) {
  run([] {
    std::vector<Stream> kept;
    Server server = weave::net::start_server(
        [&](Stream s) {
          s.write("kept\n");
          kept.push_back(std::move(s));  // outlives the handler
        },
        "127.0.0.1", 0);
    Stream c = weave::net::open_connection("127.0.0.1", server.port());
    EXPECT_EQ(c.read_line(), "kept\n");
    server.close();
    server.wait_closed();
    ASSERT_EQ(kept.size(), 1u);
    kept[0].write("still open\n");
    EXPECT_EQ(c.read_line(), "still open\n");
    kept.clear();
    EXPECT_EQ(c.read_line(), "");
  });
}

TEST(Server, ServeForeverReturnsWhenAnotherFiberCloses) {
  run([] {
    Server server = weave::net::start_server(echo_lines, "127.0.0.1", 0);
    auto closer = weave::spawn([&] {
      Stream c = weave::net::open_connection("127.0.0.1", server.port());
      c.write("x\n");
      EXPECT_EQ(c.read_line(), "x\n");
      server.close();
    });
    server.serve_forever();
    closer.get();
    server.wait_closed();
  });
}

TEST(Server, CancelledServeForeverClosesTheServer) {
  run([] {
    Server server = weave::net::start_server(echo_lines, "127.0.0.1", 0);
    EXPECT_TRUE(weave::move_on_after(5s, [&] { server.serve_forever(); }));
    EXPECT_FALSE(server.is_serving());
    server.wait_closed();
  });
}

TEST(Server, WaitClosedWaitsForRunningHandlers) {
  run([] {
    bool handler_done = false;
    Server server = weave::net::start_server(
        [&](Stream& s) {
          s.read_to_eof();
          handler_done = true;
        },
        "127.0.0.1", 0);
    Stream c = weave::net::open_connection("127.0.0.1", server.port());
    weave::this_fiber::yield();
    server.close();  // stops accepting; the handler goes on
    auto waiter = weave::spawn([&] {
      server.wait_closed();
      EXPECT_TRUE(handler_done);
    });
    weave::this_fiber::sleep_for(1s);
    EXPECT_FALSE(waiter.done());
    c.close();
    waiter.get();
  });
}

TEST(Server, CloseClientsCancelsTheHandlers) {
  run([] {
    int cancelled = 0;
    Server server = weave::net::start_server(
        [&](Stream& s) {
          try {
            s.read_line();
          } catch (const weave::Cancelled&) {
            ++cancelled;
            throw;
          }
        },
        "127.0.0.1", 0);
    Stream c1 = weave::net::open_connection("127.0.0.1", server.port());
    Stream c2 = weave::net::open_connection("127.0.0.1", server.port());
    weave::this_fiber::yield();
    weave::this_fiber::yield();
    server.close();
    server.close_clients();
    server.wait_closed();
    EXPECT_EQ(cancelled, 2);
    EXPECT_EQ(c1.read(10), "");  // the server closed them
    EXPECT_EQ(c2.read(10), "");
  });
}

TEST(Server, NewConnectionsAreRefusedAfterClose) {
  run([] {
    Server server = weave::net::start_server(echo_lines, "127.0.0.1", 0);
    auto port = server.port();
    server.close();
    server.wait_closed();
    try {
      weave::net::open_connection("127.0.0.1", port);
      ADD_FAILURE() << "connected to a closed server";
    } catch (const std::system_error& e) {
      EXPECT_EQ(e.code().value(), ECONNREFUSED);
      EXPECT_NE(std::string(e.what()).find("127.0.0.1:" + std::to_string(port)), std::string::npos)
          << e.what();
    }
  });
}

TEST(Server, ThePortCanBeBoundAgainAtOnce) {
  run([] {
    // SO_REUSEADDR: a port with connections in TIME_WAIT can be rebound.
    Server first = weave::net::start_server(echo_lines, "127.0.0.1", 0);
    auto port = first.port();
    {
      Stream c = weave::net::open_connection("127.0.0.1", port);
      c.write("a\n");
      c.read_line();
    }
    first.close();
    first.wait_closed();
    Server second = weave::net::start_server(echo_lines, "127.0.0.1", port);
    EXPECT_EQ(second.port(), port);
    // While it listens, a third bind of the same port fails clearly.
    try {
      weave::net::start_server(echo_lines, "127.0.0.1", port);
      ADD_FAILURE() << "bound twice";
    } catch (const std::system_error& e) {
      EXPECT_EQ(e.code().value(), EADDRINUSE);
    }
    second.close();
    second.wait_closed();
  });
}

TEST(Server, HandlerErrorsGoToTheHandlerOfChoiceAndTheServerGoesOn) {
  run([] {
    std::vector<std::string> errors;
    weave::net::ServerOptions options;
    options.on_handler_error = [&](std::exception_ptr e) {
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& x) {
        errors.push_back(x.what());
      }
    };
    Server server = weave::net::start_server(
        [](Stream& s) {
          if (s.read_line() == "fail\n") throw std::runtime_error("bad request");
          s.write("fine\n");
        },
        "127.0.0.1", 0, options);
    Stream c1 = weave::net::open_connection("127.0.0.1", server.port());
    c1.write("fail\n");
    EXPECT_EQ(c1.read(10), "");
    Stream c2 = weave::net::open_connection("127.0.0.1", server.port());
    c2.write("ok\n");
    EXPECT_EQ(c2.read_line(), "fine\n");
    EXPECT_EQ(errors, (std::vector<std::string>{"bad request"}));
    server.close();
    server.wait_closed();
  });
}

TEST(Server, UnhandledHandlerErrorsReachTheLoopButPeerResetsDoNot) {
  weave::ManualClock clock;
  weave::Loop loop(weave_test::manual_time(clock));
  std::vector<std::string> reported;
  loop.set_exception_handler([&](const weave::ErrorContext& c) { reported.push_back(c.message); });
  auto t = loop.spawn([] {
    Server server = weave::net::start_server(
        [](Stream& s) {
          std::string line = s.read_line();
          if (line == "boom\n") throw std::runtime_error("boom");
          if (line == "reset\n")
            throw std::system_error(ECONNRESET, std::generic_category(), "peer went");
        },
        "127.0.0.1", 0);
    for (const char* what : {"boom\n", "reset\n"}) {
      Stream c = weave::net::open_connection("127.0.0.1", server.port());
      c.write(what);
      c.read(1);
    }
    server.close();
    server.wait_closed();
  });
  weave_test::run_all(loop);
  t.get();
  ASSERT_EQ(reported.size(), 1u);
  EXPECT_NE(reported[0].find("connection handler"), std::string::npos);
}

TEST(Server, DroppingTheHandleStopsAcceptingButHandlersFinish) {
  run([] {
    bool served = false;
    std::uint16_t port;
    Stream c;
    {
      Server server = weave::net::start_server(
          [&](Stream& s) {
            s.write(s.read_line());
            served = true;
          },
          "127.0.0.1", 0);
      port = server.port();
      c = weave::net::open_connection("127.0.0.1", port);
      weave::this_fiber::yield();
    }
    c.write("late\n");
    EXPECT_EQ(c.read_line(), "late\n");
    EXPECT_TRUE(served);
    EXPECT_THROW(weave::net::open_connection("127.0.0.1", port), std::system_error);
  });
}

TEST(Server, EmptyHostListensOnEveryInterface) {
  run([] {
    Server server = weave::net::start_server(echo_lines, "", 0);
    auto addrs = server.addresses();
    ASSERT_GE(addrs.size(), 1u);
    for (const auto& a : addrs) EXPECT_EQ(a.port(), server.port());  // one port for all
    Stream c4 = weave::net::open_connection("127.0.0.1", server.port());
    c4.write("v4\n");
    EXPECT_EQ(c4.read_line(), "v4\n");
    if (addrs.size() > 1) {
      Stream c6 = weave::net::open_connection("::1", server.port());
      c6.write("v6\n");
      EXPECT_EQ(c6.read_line(), "v6\n");
    }
    server.close();
  });
}

TEST(OpenConnection, ByNameThroughTheResolver) {
  weave::default_executor();  // its threads' fds are not a leak
  run_real_time([] {
    Server server = weave::net::start_server(echo_lines, "localhost", 0);
    Stream c = weave::net::open_connection("localhost", server.port());
    c.write("by name\n");
    EXPECT_EQ(c.read_line(), "by name\n");
    server.close();
  });
}

TEST(OpenConnection, IsACancellationCheckpointAndLeavesNothingOpen) {
  weave::Loop loop;  // real time: the handshake below never completes
  int before = weave_test::open_fd_count();
  auto t = loop.spawn([] {
    // A listener that never accepts, with a backlog of 0: once one connection waits in its
    // queue, further handshakes get no answer and connect() stays in progress.
    auto listener = weave::net::listen_socket(weave::net::SocketAddress::ipv4_loopback(0),
                                              weave::net::ListenOptions{0});
    auto addr = weave::net::SocketAddress::local_of(listener.get());
    std::vector<Stream> queued;
    bool timed_out = false;
    for (int i = 0; i < 8 && !timed_out; ++i) {
      timed_out =
          weave::move_on_after(50ms, [&] { queued.push_back(weave::net::open_connection(addr)); });
    }
    EXPECT_TRUE(timed_out);
  });
  loop.run_until_complete(t);
  // At most as many: the resolver of the test before may still close an fd of its own on the
  // executor's thread meanwhile (glibc's), which is not ours to count.
  EXPECT_LE(weave_test::open_fd_count(), before);
}

TEST(OpenConnection, UnknownHostIsAResolverError) {
  weave::default_executor();
  run_real_time([] {
    try {
      weave::net::open_connection("no such host", 80);
      ADD_FAILURE() << "connected";
    } catch (const std::system_error& e) {
      EXPECT_EQ(e.code().category(), weave::net::gai_category());
    }
  });
}

}  // namespace
