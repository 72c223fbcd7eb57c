// Bad input and faults: a peer that resets mid-message, sends nothing, sends a 10 MB line or
// half-closes; fd exhaustion; 10,000 connections of which 1,000 reset mid-message.

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <system_error>
#include <vector>

#include "net_test_util.hpp"
#include "virtual_time.hpp"
#include "weave/cancel_scope.hpp"
#include "weave/errors.hpp"
#include "weave/event.hpp"
#include "weave/loop.hpp"
#include "weave/net/server.hpp"
#include "weave/net/socket.hpp"
#include "weave/net/stream.hpp"
#include "weave/semaphore.hpp"
#include "weave/task.hpp"
#include "weave/this_fiber.hpp"

namespace {

using namespace std::chrono_literals;
using weave::net::Server;
using weave::net::Stream;

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

// Closes `s` with a reset (RST) instead of an orderly FIN.
void reset(Stream& s) {
  linger l{1, 0};
  ::setsockopt(s.fd(), SOL_SOCKET, SO_LINGER, &l, sizeof l);
  s.abort();
}

TEST(Faults, PeerResetsMidMessage) {
  run([] {
    std::vector<std::string> outcomes;
    weave::net::ServerOptions options;
    options.on_handler_error = [&](std::exception_ptr e) {
      try {
        std::rethrow_exception(e);
      } catch (const weave::net::IncompleteReadError& x) {
        outcomes.push_back("incomplete after " + std::to_string(x.partial().size()));
      } catch (const std::system_error& x) {
        outcomes.push_back(x.code().value() == ECONNRESET ? "reset" : x.what());
      }
    };
    Server server = weave::net::start_server(
        [](Stream& s) {
          for (;;) {
            std::string msg = s.read_exactly(1000);
            s.write(msg.substr(0, 2));
          }
        },
        "127.0.0.1", 0, options);
    {
      Stream c = weave::net::open_connection("127.0.0.1", server.port());
      c.write(weave_test::pattern(1000));
      EXPECT_EQ(c.read_exactly(2), "ah");
      c.write(weave_test::pattern(500));  // half a message, then the reset
      weave::this_fiber::yield();
      reset(c);
    }
    // The server goes on serving others.
    Stream c2 = weave::net::open_connection("127.0.0.1", server.port());
    c2.write(weave_test::pattern(1000));
    EXPECT_EQ(c2.read_exactly(2), "ah");
    c2.close();
    server.close();
    server.wait_closed();
    ASSERT_EQ(outcomes.size(), 2u);
    EXPECT_EQ(outcomes[0], "reset");  // the reset discards the 500 bytes in flight
    EXPECT_EQ(outcomes[1], "incomplete after 0");
  });
}

TEST(Faults, SilentPeerIsClosedByTheIdleTimeout) {
  run([] {
    bool timed_out = false;
    Server server = weave::net::start_server(
        [&](Stream& s) {
          // The idle timeout is a cancel scope around the read, nothing special per call.
          try {
            std::string line = weave::fail_after(30s, [&] { return s.read_line(); });
            s.write(line);
          } catch (const weave::TimeoutError&) {
            timed_out = true;
            s.write("idle timeout\n");
          }
        },
        "127.0.0.1", 0);
    Stream c = weave::net::open_connection("127.0.0.1", server.port());
    auto start = weave::Loop::current().time();
    EXPECT_EQ(c.read_line(), "idle timeout\n");
    EXPECT_EQ(c.read_line(), "");  // and closed
    EXPECT_GE(weave::Loop::current().time() - start, 30s);
    EXPECT_TRUE(timed_out);
    server.close();
  });
}

TEST(Faults, TenMegabyteLineHitsTheLimitAndLosesNothing) {
  run([] {
    const std::size_t size = 10 * 1024 * 1024;
    Server server = weave::net::start_server(
        [&](Stream& s) {
          try {
            s.read_line();
            s.write("no error\n");
          } catch (const weave::net::LimitOverrunError& e) {
            // Nothing was consumed: skip the line in pieces, counting its bytes.
            std::size_t skipped = 0;
            for (;;) {
              std::string_view buf = s.peek();
              if (buf.empty()) {
                if (s.read(1).size() == 0) break;  // waits for more; "" at the end
                ++skipped;
                continue;
              }
              auto nl = buf.find('\n');
              std::size_t n = nl == std::string_view::npos ? buf.size() : nl + 1;
              skipped += s.read(n).size();
              if (nl != std::string_view::npos) break;
            }
            s.write("line of " + std::to_string(skipped) + " bytes refused (limit " +
                    std::to_string(e.limit()) + ")\n");
            s.write(s.read_line());  // the next line is intact
          }
        },
        "127.0.0.1", 0);
    Stream c = weave::net::open_connection("127.0.0.1", server.port());
    auto writer = weave::spawn([&] {
      c.write(std::string(size, 'x') + "\n");
      c.write("next\n");
      c.drain();
    });
    EXPECT_EQ(c.read_line(),
              "line of " + std::to_string(size + 1) + " bytes refused (limit 65536)\n");
    EXPECT_EQ(c.read_line(), "next\n");
    writer.get();
    server.close();
  });
}

TEST(Faults, HalfClosedPeerStillGetsItsAnswer) {
  run([] {
    Server server = weave::net::start_server(
        [](Stream& s) {
          std::string request = s.read_to_eof();  // the client's half-close ends it
          EXPECT_TRUE(s.at_eof());
          s.write("got " + std::to_string(request.size()) + " bytes\n");
        },
        "127.0.0.1", 0);
    Stream c = weave::net::open_connection("127.0.0.1", server.port());
    c.write(weave_test::pattern(100000));
    c.shutdown_write();
    EXPECT_EQ(c.read_to_eof(), "got 100000 bytes\n");
    server.close();
  });
}

// ---- fd exhaustion ---------------------------------------------------------------------------

// CPU time (user + system, in clock ticks) used so far by process `pid`.
long cpu_ticks(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::istringstream rest(stat.substr(stat.rfind(')') + 2));
  std::string field;
  long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) utime = std::stol(field);
    if (i == 15) stime = std::stol(field);
  }
  return utime + stime;
}

int blocking_connect(std::uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

TEST(Faults, OutOfFdsAcceptBacksOffWithoutSpinningAndRecovers) {
  // The server runs in a child process whose RLIMIT_NOFILE is lowered, so the rest of the
  // suite keeps its fds; this process is the client.
  int port_pipe[2];
  ASSERT_EQ(::pipe2(port_pipe, O_CLOEXEC), 0);
  const int kClients = 60;
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::close(port_pipe[0]);
    // The limit is lowered only after one whole connection was served: UBSan checks the first
    // use of each dynamic type (the handler's fiber, the errors) with the help of a pipe, which
    // cannot be made once fds run out.
    try {
      throw std::system_error(EMFILE, std::generic_category(), "meeting the type early");
    } catch (const std::system_error& e) {
      if (e.code().value() != EMFILE) ::_exit(5);
    }
    auto lower_limit = [] {
      // Room for the loop, the listener and about 20 connections.
      rlimit lim{32, 32};
      ::setrlimit(RLIMIT_NOFILE, &lim);
    };
    int code = 0;
    {
      weave::Loop loop;
      bool reported = false;
      loop.set_exception_handler([&](const weave::ErrorContext& c) {
        if (c.message.find("EMFILE") != std::string::npos) reported = true;
      });
      auto t = loop.spawn([&] {
        int served = 0;
        Server server = weave::net::start_server(
            [&](Stream& s) {
              s.write(s.read_line());
              s.read_to_eof();  // hold the fd until the client lets go
              ++served;
            },
            "127.0.0.1", 0);
        std::uint16_t port = server.port();
        if (::write(port_pipe[1], &port, sizeof port) != sizeof port) ::_exit(4);
        while (served < 1) weave::this_fiber::sleep_for(1ms);  // the warm-up connection
        lower_limit();
        // Tell the client: only now may the other connections come.
        if (::write(port_pipe[1], "L", 1) != 1) ::_exit(4);
        while (served < kClients + 1) weave::this_fiber::sleep_for(10ms);
        server.close();
      });
      loop.run_until_complete(t);
      code = reported ? 0 : 3;
    }
    ::_exit(code);
  }
  ::close(port_pipe[1]);
  std::uint16_t port = 0;
  ASSERT_EQ(::read(port_pipe[0], &port, sizeof port), static_cast<ssize_t>(sizeof port));
  {
    // The warm-up connection, served before the child lowers its fd limit.
    int fd = blocking_connect(port);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::write(fd, "hi\n", 3), 3);
    char buf[8];
    EXPECT_EQ(::read(fd, buf, sizeof buf), 3);
    ::close(fd);
    char lowered;
    ASSERT_EQ(::read(port_pipe[0], &lowered, 1), 1);  // the child's limit is down now
    ::close(port_pipe[0]);
  }

  // Every client connects (the kernel completes the handshakes into the backlog) and asks.
  std::vector<int> clients;
  for (int i = 0; i < kClients; ++i) {
    int fd = blocking_connect(port);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::write(fd, "hi\n", 3), 3);
    clients.push_back(fd);
  }
  // Only some can be accepted: the server is out of fds, with connections waiting.
  std::vector<bool> answered(kClients, false);
  int n_answered = 0;
  // Reads the answers that arrive within `ms` (one poll over every client still waiting).
  auto collect = [&](int ms) {
    std::vector<pollfd> waiting;
    std::vector<int> index;
    for (int i = 0; i < kClients; ++i)
      if (!answered[i] && clients[i] >= 0) {
        waiting.push_back({clients[i], POLLIN, 0});
        index.push_back(i);
      }
    if (waiting.empty() || ::poll(waiting.data(), waiting.size(), ms) <= 0) return;
    for (std::size_t k = 0; k < waiting.size(); ++k)
      if (waiting[k].revents & POLLIN) {
        char buf[8];
        EXPECT_EQ(::read(waiting[k].fd, buf, sizeof buf), 3);
        answered[index[k]] = true;
        ++n_answered;
      }
  };
  for (int i = 0; i < 5; ++i) collect(40);
  EXPECT_GT(n_answered, 0);
  EXPECT_LT(n_answered, kClients);
  // Meanwhile it must not spin: measure its CPU time over half a second of shortage.
  long before = cpu_ticks(pid);
  ::usleep(500 * 1000);
  long used = cpu_ticks(pid) - before;
  long hz = ::sysconf(_SC_CLK_TCK);
  EXPECT_LT(used, hz / 10) << "the server used " << used
                           << " ticks of CPU in 0.5 s while out of fds";
  // Free fds on the server: answered clients go; the rest get served as fds come back.
  for (int round = 0; round < 100 && n_answered < kClients; ++round) {
    for (int i = 0; i < kClients; ++i)
      if (answered[i] && clients[i] >= 0) {
        ::close(clients[i]);
        clients[i] = -1;
      }
    collect(20);
  }
  EXPECT_EQ(n_answered, kClients);
  for (int fd : clients)
    if (fd >= 0) ::close(fd);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "3: the shortage was not reported as EMFILE";
}

// ---- 10,000 connections, 1,000 resetting mid-message ------------------------------------------

// The client side runs in a child process: 10,000 connections at both ends exceed the
// RLIMIT_NOFILE of 20,000 of one process here. Under sanitizers the counts are scaled down
// (each fiber costs far more there): 1,000 connections, 100 resets.
TEST(Faults, TenThousandConnectionsWithAThousandResetsLeaveNothingBehind) {
  const int kConnections = weave_test::kSanitized ? 1000 : 10000;
  const int kResets = kConnections / 10;
  rlimit lim{};
  ::getrlimit(RLIMIT_NOFILE, &lim);
  if (lim.rlim_cur < static_cast<rlim_t>(kConnections + 100))
    GTEST_SKIP() << "RLIMIT_NOFILE " << lim.rlim_cur << " is too low for " << kConnections;

  int port_pipe[2], report_pipe[2];
  ASSERT_EQ(::pipe2(port_pipe, O_CLOEXEC), 0);
  ASSERT_EQ(::pipe2(report_pipe, O_CLOEXEC), 0);
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    // The load generator: every connection opens, then all talk at once once every one is
    // open (10,000 concurrent at the server); one in ten sends half a message and resets.
    ::close(port_pipe[1]);
    ::close(report_pipe[0]);
    std::uint16_t port = 0;
    if (::read(port_pipe[0], &port, sizeof port) != sizeof port) ::_exit(4);
    int ok = 0, failed = 0;
    {
      weave::Loop loop;
      auto main = loop.spawn([&] {
        weave::Semaphore connecting(200);  // handshakes in flight, within the backlog
        int open = 0;
        weave::Event all_open;
        std::vector<weave::Task<void>> clients;
        for (int i = 0; i < kConnections; ++i) {
          clients.push_back(weave::spawn([&, i] {
            try {
              Stream c;
              {
                connecting.acquire();
                struct Release {
                  weave::Semaphore& s;
                  ~Release() { s.release(); }
                } release{connecting};
                c = weave::net::open_connection(weave::net::SocketAddress::ipv4_loopback(port));
              }
              // The greeting says the server has accepted this connection.
              if (c.read_line() != "welcome\n") throw std::runtime_error("no greeting");
              if (++open == kConnections) all_open.set();
              all_open.wait();
              if (i % (kConnections / kResets) == 0) {
                c.write("half a mess");
                weave::this_fiber::yield();
                reset(c);
                ++ok;
                return;
              }
              c.write("hello " + std::to_string(i) + "\n");
              if (c.read_line() == "hello " + std::to_string(i) + "\n")
                ++ok;
              else
                ++failed;
            } catch (const std::exception&) {
              ++failed;
              if (++open == kConnections) all_open.set();
            }
          }));
        }
        for (auto& t : clients) t.join();
      });
      loop.run_until_complete(main);
    }
    std::string report = std::to_string(ok) + " " + std::to_string(failed) + "\n";
    if (::write(report_pipe[1], report.data(), report.size()) < 0) ::_exit(5);
    ::_exit(0);
  }
  ::close(port_pipe[0]);
  ::close(report_pipe[1]);
  int write_end = port_pipe[1];
  int report_end = report_pipe[0];

  std::size_t peak = 0;
  int handler_errors = 0;
  {
    weave::Loop loop;
    int fds_before = weave_test::open_fd_count() - 2;  // minus the two pipe ends still open
    auto t = loop.spawn([&] {
      std::size_t fibers_before = weave::Loop::current().live_fibers();
      {
        weave::net::ServerOptions options;
        options.on_handler_error = [&](std::exception_ptr) { ++handler_errors; };
        Server* self = nullptr;
        Server server = weave::net::start_server(
            [&](Stream& s) {
              // No handler ends before every client got its greeting, so the last one to
              // start sees every connection open.
              peak = std::max(peak, self->connection_count());
              s.write("welcome\n");
              for (const std::string& line : s.lines()) s.write(line + "\n");
            },
            "127.0.0.1", 0, options);
        self = &server;
        std::uint16_t port = server.port();
        EXPECT_EQ(::write(write_end, &port, sizeof port), static_cast<ssize_t>(sizeof port));
        ::close(write_end);
        // The child's report arrives through a pipe, read as a Stream.
        Stream report(report_end);
        std::string line = report.read_line();
        EXPECT_EQ(line, std::to_string(kConnections) + " 0\n");
        report.close();
        while (server.connection_count() != 0) weave::this_fiber::sleep_for(5ms);
        server.close();
        server.wait_closed();
        EXPECT_EQ(server.accepted_count(), static_cast<std::size_t>(kConnections));
      }
      EXPECT_EQ(weave::Loop::current().live_fibers(), fibers_before);
    });
    loop.run_until_complete(t);
    EXPECT_EQ(weave_test::open_fd_count(), fds_before);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  EXPECT_EQ(peak, static_cast<std::size_t>(kConnections)) << "not all were open at once";
  // The resets show up as handler errors (a reset before the line, or a partial last line
  // is read as a line and its echo fails) or as a quiet end of the stream.
  EXPECT_LE(handler_errors, kResets);
}

}  // namespace
