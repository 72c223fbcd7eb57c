// The Protocol API: transports, callback servers and clients, flow control, hand-off to fibers.

#include "weave/net/protocol.hpp"
// ^ first, on its own: proves the header under test is self-contained

#include <dirent.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include "weave/cancel_scope.hpp"
#include "weave/errors.hpp"
#include "weave/event.hpp"
#include "weave/loop.hpp"
#include "weave/net/server.hpp"
#include "weave/net/stream.hpp"
#include "weave/task.hpp"
#include "weave/this_fiber.hpp"

namespace {

using namespace std::chrono_literals;
namespace net = weave::net;

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kSanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif
#else
constexpr bool kSanitized = false;
#endif

int open_fds() {
  int n = 0;
  DIR* d = ::opendir("/proc/self/fd");
  while (dirent* e = ::readdir(d))
    if (e->d_name[0] != '.') ++n;
  ::closedir(d);
  return n - 1;  // the directory stream itself
}

// Records every callback in order.
struct Recorder : net::Protocol {
  net::Transport* t = nullptr;
  std::vector<std::string>* log;
  std::string data;
  std::exception_ptr lost_error;
  bool keep_open_on_eof = false;
  explicit Recorder(std::vector<std::string>* l) : log(l) {}
  void connection_made(net::Transport& transport) override {
    t = &transport;
    log->push_back("made");
  }
  void data_received(std::string_view d) override {
    data.append(d);
    log->push_back("data");
  }
  bool eof_received() override {
    log->push_back("eof:" + data);
    return keep_open_on_eof;
  }
  void connection_lost(std::exception_ptr e) override {
    lost_error = e;
    log->push_back(e ? "lost:error" : "lost");
  }
  void pause_writing() override { log->push_back("pause"); }
  void resume_writing() override { log->push_back("resume"); }
};

struct Echo : net::Protocol {
  net::Transport* t = nullptr;
  void connection_made(net::Transport& transport) override { t = &transport; }
  void data_received(std::string_view d) override { t->write(d); }
};

net::ProtocolServer echo_server(weave::Loop& loop) {
  return net::create_server([] { return std::make_unique<Echo>(); },
                            {net::SocketAddress::ipv4_loopback(0)}, {}, loop);
}

// Closes the server and its connections and waits until every connection_lost() ran.
void shut(weave::Loop& loop, net::ProtocolServer& server) {
  server.close();
  server.close_clients();
  loop.run_until_complete(loop.spawn([&] { server.wait_closed(); }));
}

// Everything until the end of the stream.
std::string read_all(net::Stream& s) {
  std::string out;
  for (;;) {
    std::string chunk = s.read(64 * 1024);
    if (chunk.empty()) return out;
    out += chunk;
  }
}

std::string pattern(std::size_t n) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + (i * 7 + i / 251) % 26);
  return s;
}

TEST(ProtocolServer, EchoesToAFiberClient) {
  weave::Loop loop;
  auto server = echo_server(loop);
  EXPECT_NE(server.port(), 0);
  EXPECT_TRUE(server.is_serving());
  auto client = loop.spawn([&] {
    net::Stream s = net::open_connection("127.0.0.1", server.port());
    s.write("hello\n");
    std::string a = s.read_line();
    s.write("world\n");
    return a + s.read_line();
  });
  EXPECT_EQ(loop.run_until_complete(client), "hello\nworld\n");
  EXPECT_EQ(server.accepted_count(), 1u);
  shut(loop, server);
  EXPECT_EQ(server.connection_count(), 0u);
}

TEST(ProtocolServer, CallbacksComeInOrderAndTheTransportKnowsItsAddresses) {
  weave::Loop loop;
  std::vector<std::string> log;
  Recorder* rec = nullptr;
  net::SocketAddress sockname, peername;
  auto server = net::create_server(
      [&] {
        auto r = std::make_unique<Recorder>(&log);
        rec = r.get();
        return r;
      },
      {net::SocketAddress::ipv4_loopback(0)}, {}, loop);
  auto client = loop.spawn([&] {
    net::Stream s = net::open_connection("127.0.0.1", server.port());
    s.write("abc");
    s.drain();
    weave::this_fiber::sleep_for(2ms);  // two separate segments, usually two reads
    while (rec == nullptr || rec->data.empty()) weave::this_fiber::sleep_for(1ms);
    sockname = rec->t->sockname();  // while the connection lives: rec goes with it
    peername = rec->t->peername();
    s.write("def");
    s.shutdown_write();
    EXPECT_EQ(s.read(10), "");  // the server closes after EOF
    return s.local_address();
  });
  net::SocketAddress client_addr = loop.run_until_complete(client);
  shut(loop, server);
  ASSERT_GE(log.size(), 4u);
  EXPECT_EQ(log.front(), "made");
  EXPECT_EQ(log[log.size() - 2], "eof:abcdef");
  EXPECT_EQ(log.back(), "lost");
  for (std::size_t i = 1; i + 2 < log.size(); ++i) EXPECT_EQ(log[i], "data");
  EXPECT_EQ(sockname.port(), server.port());
  EXPECT_EQ(peername, client_addr);
}

// eof_received() returning true keeps the transport open for writing: a half-close.
TEST(ProtocolServer, KeepingTheTransportOpenAfterEofAllowsAReply) {
  struct Summer : net::Protocol {
    net::Transport* t = nullptr;
    std::string got;
    void connection_made(net::Transport& tr) override { t = &tr; }
    void data_received(std::string_view d) override { got.append(d); }
    bool eof_received() override {
      t->write("got " + std::to_string(got.size()) + " bytes");
      t->close();  // after the reply is sent
      return true;
    }
  };
  weave::Loop loop;
  auto server = net::create_server([] { return std::make_unique<Summer>(); },
                                   {net::SocketAddress::ipv4_loopback(0)}, {}, loop);
  auto client = loop.spawn([&] {
    net::Stream s = net::open_connection("127.0.0.1", server.port());
    s.write(std::string(1000, 'x'));
    s.shutdown_write();
    return read_all(s);
  });
  EXPECT_EQ(loop.run_until_complete(client), "got 1000 bytes");
  shut(loop, server);
}

TEST(ProtocolServer, APeerResetIsAnErrorForConnectionLost) {
  weave::Loop loop;
  std::vector<std::string> log;
  Recorder* rec = nullptr;
  weave::Event lost;
  std::exception_ptr lost_error;
  // The protocol is destroyed after connection_lost(): what the test checks is kept outside.
  struct Watcher : Recorder {
    weave::Event* lost;
    std::exception_ptr* out;
    Watcher(std::vector<std::string>* l, weave::Event* e, std::exception_ptr* o)
        : Recorder(l), lost(e), out(o) {}
    void connection_lost(std::exception_ptr e) override {
      Recorder::connection_lost(e);
      *out = e;
      lost->set();
    }
  };
  auto server = net::create_server(
      [&] {
        auto r = std::make_unique<Watcher>(&log, &lost, &lost_error);
        rec = r.get();
        return r;
      },
      {net::SocketAddress::ipv4_loopback(0)}, {}, loop);
  auto client = loop.spawn([&] {
    net::Stream s = net::open_connection("127.0.0.1", server.port());
    s.write("partial mess");
    s.drain();
    while (rec == nullptr || rec->data.empty()) weave::this_fiber::sleep_for(1ms);
    linger l{1, 0};  // close with a reset
    ::setsockopt(s.fd(), SOL_SOCKET, SO_LINGER, &l, sizeof l);
    s.abort();
    lost.wait();
  });
  loop.run_until_complete(client);
  ASSERT_TRUE(lost_error);
  try {
    std::rethrow_exception(lost_error);
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code().value(), ECONNRESET);
  }
  shut(loop, server);
}

TEST(ProtocolServer, AnExceptionInDataReceivedAbortsTheConnection) {
  struct Thrower : net::Protocol {
    std::exception_ptr* lost;
    explicit Thrower(std::exception_ptr* l) : lost(l) {}
    void data_received(std::string_view) override { throw std::runtime_error("bad input"); }
    void connection_lost(std::exception_ptr e) override { *lost = e; }
  };
  weave::Loop loop;
  std::vector<std::string> reports;
  loop.set_exception_handler([&](const weave::ErrorContext& c) { reports.push_back(c.message); });
  std::exception_ptr lost;
  auto server = net::create_server([&] { return std::make_unique<Thrower>(&lost); },
                                   {net::SocketAddress::ipv4_loopback(0)}, {}, loop);
  auto client = loop.spawn([&] {
    net::Stream s = net::open_connection("127.0.0.1", server.port());
    s.write("x");
    try {
      return read_all(s);  // the server aborts: end of file (or a reset)
    } catch (const std::system_error&) {
      return std::string("reset");
    }
  });
  std::string got = loop.run_until_complete(client);
  EXPECT_TRUE(got.empty() || got == "reset") << got;
  shut(loop, server);
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_NE(reports[0].find("data_received"), std::string::npos) << reports[0];
  ASSERT_TRUE(lost);
  EXPECT_THROW(std::rethrow_exception(lost), std::runtime_error);
}

// A big write goes above the high-water mark: pause_writing(); the client drains it:
// resume_writing(); every byte arrives in order.
TEST(Transport, WaterMarksPauseAndResumeTheProtocol) {
  const std::size_t kSize = kSanitized ? 4 << 20 : 8 << 20;
  const std::string payload = pattern(kSize);
  struct Sender : Recorder {
    const std::string* payload;
    Sender(std::vector<std::string>* l, const std::string* p) : Recorder(l), payload(p) {}
    void connection_made(net::Transport& tr) override {
      Recorder::connection_made(tr);
      // A small kernel buffer, so that the write cannot all go at once however loopback
      // is tuned.
      int sndbuf = 256 * 1024;
      ::setsockopt(tr.fd(), SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
      tr.set_write_buffer_limits(64 * 1024, 16 * 1024);
      EXPECT_EQ(tr.get_write_buffer_limits(), (std::pair<std::size_t, std::size_t>{16384, 65536}));
      tr.write(*payload);
      EXPECT_GT(tr.get_write_buffer_size(), 0u);  // the kernel cannot take 1 MB at once
      tr.close();                                 // after the buffer is sent
    }
  };
  weave::Loop loop;
  std::vector<std::string> log;
  auto server = net::create_server([&] { return std::make_unique<Sender>(&log, &payload); },
                                   {net::SocketAddress::ipv4_loopback(0)}, {}, loop);
  auto client = loop.spawn([&] {
    net::Stream s = net::open_connection("127.0.0.1", server.port());
    return read_all(s);
  });
  std::string got = loop.run_until_complete(client);
  shut(loop, server);
  EXPECT_TRUE(got == payload) << "got " << got.size() << " bytes of " << payload.size();
  EXPECT_EQ(log, (std::vector<std::string>{"made", "pause", "resume", "lost"}));
}

TEST(Transport, SetWriteBufferLimitsChecksItsArguments) {
  weave::Loop loop;
  auto server = echo_server(loop);
  net::TransportPtr t;
  auto client = loop.spawn([&] {
    t = net::create_connection([] { return std::make_unique<Echo>(); },
                               net::SocketAddress::ipv4_loopback(server.port()));
    EXPECT_THROW(t->set_write_buffer_limits(10, 20), std::invalid_argument);
    t->set_write_buffer_limits(1000);
    EXPECT_EQ(t->get_write_buffer_limits(), (std::pair<std::size_t, std::size_t>{250, 1000}));
    t->close();
  });
  loop.run_until_complete(client);
  shut(loop, server);
}

TEST(Transport, PauseReadingStopsDataReceivedUntilResumed) {
  weave::Loop loop;
  std::vector<std::string> log;
  Recorder* rec = nullptr;
  auto server = net::create_server(
      [&] {
        auto r = std::make_unique<Recorder>(&log);
        rec = r.get();
        return r;
      },
      {net::SocketAddress::ipv4_loopback(0)}, {}, loop);
  auto client = loop.spawn([&] {
    net::Stream s = net::open_connection("127.0.0.1", server.port());
    while (rec == nullptr) weave::this_fiber::sleep_for(1ms);
    rec->t->pause_reading();
    EXPECT_FALSE(rec->t->is_reading());
    rec->t->pause_reading();  // twice is fine
    s.write("while paused");
    s.drain();
    weave::this_fiber::sleep_for(5ms);
    EXPECT_EQ(rec->data, "");
    rec->t->resume_reading();
    EXPECT_TRUE(rec->t->is_reading());
    while (rec->data.size() < 12) weave::this_fiber::sleep_for(1ms);
    EXPECT_EQ(rec->data, "while paused");
  });
  loop.run_until_complete(client);
  shut(loop, server);
}

TEST(Transport, CloseSendsWhatIsBufferedAbortDropsIt) {
  const std::string payload = pattern(4 << 20);
  struct Closer : Recorder {
    const std::string* payload;
    bool abort;
    Closer(std::vector<std::string>* l, const std::string* p, bool a)
        : Recorder(l), payload(p), abort(a) {}
    void connection_made(net::Transport& tr) override {
      Recorder::connection_made(tr);
      tr.write(*payload);
      if (abort)
        tr.abort();
      else
        tr.close();
      EXPECT_TRUE(tr.is_closing());
      tr.close();  // idempotent
      tr.write("dropped or queued, never an error");
    }
  };
  for (bool abort : {false, true}) {
    weave::Loop loop;
    std::vector<std::string> log;
    auto server =
        net::create_server([&] { return std::make_unique<Closer>(&log, &payload, abort); },
                           {net::SocketAddress::ipv4_loopback(0)}, {}, loop);
    auto client = loop.spawn([&] {
      net::Stream s = net::open_connection("127.0.0.1", server.port());
      try {
        return read_all(s).size();
      } catch (const std::system_error&) {
        return std::size_t{0};  // an abort may reach the client as a reset
      }
    });
    std::size_t got = loop.run_until_complete(client);
    shut(loop, server);
    if (abort)
      EXPECT_LT(got, payload.size());
    else
      EXPECT_GE(got, payload.size());
    EXPECT_EQ(log.back(), "lost");
  }
}

TEST(Transport, WriteEofHalfClosesAndForbidsFurtherWrites) {
  struct Greeter : Recorder {
    using Recorder::Recorder;
    void connection_made(net::Transport& tr) override {
      Recorder::connection_made(tr);
      EXPECT_TRUE(tr.can_write_eof());
      tr.write("greeting");
      tr.write_eof();
      EXPECT_THROW(tr.write("more"), std::logic_error);
      keep_open_on_eof = false;
    }
  };
  weave::Loop loop;
  std::vector<std::string> log;
  auto server = net::create_server([&] { return std::make_unique<Greeter>(&log); },
                                   {net::SocketAddress::ipv4_loopback(0)}, {}, loop);
  auto client = loop.spawn([&] {
    net::Stream s = net::open_connection("127.0.0.1", server.port());
    std::string got = read_all(s);    // the server's write side is closed
    s.write("reply after your eof");  // ours is still open
    s.shutdown_write();
    while (log.size() < 4) weave::this_fiber::sleep_for(1ms);  // the server saw our EOF
    return got;
  });
  EXPECT_EQ(loop.run_until_complete(client), "greeting");
  shut(loop, server);
  EXPECT_EQ(log[log.size() - 2], "eof:reply after your eof");
}

TEST(Transport, ConnectionMadeMayCloseAtOnce) {
  struct Rejecter : Recorder {
    using Recorder::Recorder;
    void connection_made(net::Transport& tr) override {
      Recorder::connection_made(tr);
      tr.close();
    }
  };
  weave::Loop loop;
  std::vector<std::string> log;
  auto server = net::create_server([&] { return std::make_unique<Rejecter>(&log); },
                                   {net::SocketAddress::ipv4_loopback(0)}, {}, loop);
  auto client = loop.spawn([&] {
    net::Stream s = net::open_connection("127.0.0.1", server.port());
    return read_all(s);
  });
  EXPECT_EQ(loop.run_until_complete(client), "");
  shut(loop, server);
  EXPECT_EQ(log, (std::vector<std::string>{"made", "lost"}));
}

TEST(Transport, SetProtocolSwitchesOnALiveConnection) {
  struct Upper : net::Protocol {
    net::Transport* t;
    explicit Upper(net::Transport* tr) : t(tr) {}
    void data_received(std::string_view d) override {
      std::string s(d);
      for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      t->write(s);
    }
  };
  struct Handshake : net::Protocol {
    net::Transport* t = nullptr;
    void connection_made(net::Transport& tr) override { t = &tr; }
    void data_received(std::string_view d) override {
      t->write("ok\n");
      EXPECT_EQ(d, "upper\n");
      t->set_protocol(std::make_unique<Upper>(t));  // destroys this protocol later
    }
  };
  weave::Loop loop;
  auto server = net::create_server([] { return std::make_unique<Handshake>(); },
                                   {net::SocketAddress::ipv4_loopback(0)}, {}, loop);
  auto client = loop.spawn([&] {
    net::Stream s = net::open_connection("127.0.0.1", server.port());
    s.write("upper\n");
    std::string a = s.read_line();
    s.write("shout\n");
    return a + s.read_line();
  });
  EXPECT_EQ(loop.run_until_complete(client), "ok\nSHOUT\n");
  shut(loop, server);
}

// The whole chain of flow control: a client that sends without reading fills the server's
// write buffer; the protocol pauses reading at the high-water mark, so the server's buffer
// stays bounded while the client's own queue grows; when the client reads, everything comes
// back in order.
TEST(Transport, PausingReadingOnPauseWritingBoundsTheServersBuffer) {
  struct FlowEcho : net::Protocol {
    net::Transport* t = nullptr;
    std::size_t* most;
    int* pauses;
    FlowEcho(std::size_t* m, int* p) : most(m), pauses(p) {}
    void connection_made(net::Transport& tr) override {
      t = &tr;
      int sndbuf = 256 * 1024;  // keep the kernel's share small and the test fast
      ::setsockopt(tr.fd(), SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    }
    void data_received(std::string_view d) override {
      t->write(d);
      if (t->get_write_buffer_size() > *most) *most = t->get_write_buffer_size();
    }
    void pause_writing() override {
      ++*pauses;
      t->pause_reading();
    }
    void resume_writing() override { t->resume_reading(); }
  };
  const std::size_t kSize = kSanitized ? 2 << 20 : 16 << 20;
  const std::string payload = pattern(kSize);
  weave::Loop loop;
  std::size_t most = 0;
  int pauses = 0;
  auto server = net::create_server([&] { return std::make_unique<FlowEcho>(&most, &pauses); },
                                   {net::SocketAddress::ipv4_loopback(0)}, {}, loop);
  auto client = loop.spawn([&] {
    net::Stream s = net::open_connection("127.0.0.1", server.port());
    // Everything is queued at once: the client reads nothing until it has written it all.
    for (std::size_t off = 0; off < kSize; off += 64 * 1024)
      s.write(std::string_view(payload).substr(off, 64 * 1024));
    while (pauses == 0) weave::this_fiber::sleep_for(1ms);
    std::string back = s.read_exactly(kSize);
    return back == payload;
  });
  EXPECT_TRUE(loop.run_until_complete(client));
  shut(loop, server);
  EXPECT_GE(pauses, 1);
  // At most the high-water mark plus what one read brought (64 KiB).
  EXPECT_LE(most, 64u * 1024 + 64 * 1024);
}

TEST(Transport, AnExceptionInConnectionLostIsReported) {
  struct Bad : net::Protocol {
    void connection_made(net::Transport& tr) override { tr.close(); }
    void connection_lost(std::exception_ptr) override { throw std::runtime_error("oops"); }
  };
  weave::Loop loop;
  std::vector<std::string> reports;
  loop.set_exception_handler([&](const weave::ErrorContext& c) { reports.push_back(c.message); });
  auto server = net::create_server([] { return std::make_unique<Bad>(); },
                                   {net::SocketAddress::ipv4_loopback(0)}, {}, loop);
  auto client = loop.spawn([&] {
    net::Stream s = net::open_connection("127.0.0.1", server.port());
    return read_all(s);
  });
  EXPECT_EQ(loop.run_until_complete(client), "");
  shut(loop, server);
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_NE(reports[0].find("connection_lost"), std::string::npos) << reports[0];
}

TEST(ProtocolServer, AbortClientsEndsEveryConnectionAtOnce) {
  weave::Loop loop;
  std::vector<std::string> log;
  auto server = net::create_server([&] { return std::make_unique<Recorder>(&log); },
                                   {net::SocketAddress::ipv4_loopback(0)}, {}, loop);
  auto t = loop.spawn([&] {
    std::vector<net::Stream> streams;
    for (int i = 0; i < 5; ++i) streams.push_back(net::open_connection("127.0.0.1", server.port()));
    while (server.connection_count() < 5) weave::this_fiber::sleep_for(1ms);
    server.abort_clients();
    EXPECT_EQ(server.connection_count(), 0u);
    int ended = 0;
    for (auto& s : streams) {
      try {
        if (read_all(s).empty()) ++ended;
      } catch (const std::system_error&) {
        ++ended;
      }
    }
    return ended;
  });
  EXPECT_EQ(loop.run_until_complete(t), 5);
  shut(loop, server);
  EXPECT_EQ(std::count(log.begin(), log.end(), "lost"), 5);
}

TEST(ProtocolServer, ServesAUnixSocket) {
  weave::Loop loop;
  auto path = net::SocketAddress::unix_path("@weave-protocol-test-" + std::to_string(::getpid()));
  auto server = net::create_server([] { return std::make_unique<Echo>(); }, {path}, {}, loop);
  EXPECT_EQ(server.addresses().front(), path);
  struct Client : net::Protocol {
    net::Transport* t = nullptr;
    std::string got;
    weave::Event done;
    void connection_made(net::Transport& tr) override {
      t = &tr;
      tr.write("over a unix socket");
    }
    void data_received(std::string_view d) override {
      got.append(d);
      if (got.size() == 18) t->close();
    }
    void connection_lost(std::exception_ptr) override { done.set(); }
  };
  auto client = loop.spawn([&] {
    net::TransportPtr t = net::create_connection([] { return std::make_unique<Client>(); }, path);
    EXPECT_EQ(t->peername(), path);
    t->protocol_as<Client>().done.wait();
    return t->protocol_as<Client>().got;
  });
  EXPECT_EQ(loop.run_until_complete(client), "over a unix socket");
  shut(loop, server);
}

TEST(ProtocolServer, ANameAndPortZeroListenOnOnePortForEveryAddress) {
  weave::Loop loop;
  auto t = loop.spawn([&] {
    auto server = net::create_server([] { return std::make_unique<Echo>(); }, "localhost", 0);
    for (const auto& a : server.addresses()) EXPECT_EQ(a.port(), server.port()) << a.to_string();
    // A client by name too: every address of "localhost" is tried until one answers.
    struct Once : net::Protocol {
      std::string got;
      net::Transport* t = nullptr;
      void connection_made(net::Transport& tr) override {
        t = &tr;
        tr.write("hi");
      }
      void data_received(std::string_view d) override {
        got.append(d);
        t->close();
      }
    };
    net::TransportPtr c =
        net::create_connection([] { return std::make_unique<Once>(); }, "localhost", server.port());
    while (!c->is_closing()) weave::this_fiber::sleep_for(1ms);
    std::string got = c->protocol_as<Once>().got;
    server.close();
    server.close_clients();
    server.wait_closed();
    return got;
  });
  EXPECT_EQ(loop.run_until_complete(t), "hi");
}

TEST(ProtocolServer, CreateServerChecksItsArguments) {
  weave::Loop loop;
  auto factory = [] { return std::make_unique<Echo>(); };
  auto any = net::SocketAddress::ipv4_loopback(0);
  EXPECT_THROW(net::create_server(nullptr, {any}, {}, loop), std::invalid_argument);
  EXPECT_THROW(net::create_server(factory, std::vector<net::SocketAddress>{}, {}, loop),
               std::invalid_argument);
  net::ProtocolServerOptions bad;
  bad.low_water = bad.high_water + 1;
  EXPECT_THROW(net::create_server(factory, {any}, bad, loop), std::invalid_argument);
  auto first = net::create_server(factory, {any}, {}, loop);
  try {
    net::create_server(factory, {net::SocketAddress::ipv4_loopback(first.port())}, {}, loop);
    ADD_FAILURE() << "bound a port in use";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code().value(), EADDRINUSE);
  }
}

TEST(ProtocolServer, AHandleMovesAndAnEmptyOneSaysSo) {
  weave::Loop loop;
  net::ProtocolServer empty;
  EXPECT_FALSE(empty.valid());
  EXPECT_FALSE(empty.is_serving());
  EXPECT_EQ(empty.connection_count(), 0u);
  EXPECT_THROW(empty.port(), std::logic_error);
  auto a = echo_server(loop);
  const std::uint16_t port = a.port();
  net::ProtocolServer b;
  b = std::move(a);
  EXPECT_FALSE(a.valid());  // NOLINT(bugprone-use-after-move): moved-from is empty
  EXPECT_EQ(b.port(), port);
  net::ProtocolServer c(std::move(b));
  EXPECT_TRUE(c.is_serving());
  c = echo_server(loop);  // the old server closes
  auto t = loop.spawn([port] { net::open_connection("127.0.0.1", port); });
  EXPECT_THROW(loop.run_until_complete(t), std::system_error);
  shut(loop, c);
}

// ---- clients ---------------------------------------------------------------------------------

TEST(CreateConnection, AProtocolClientTalksToAFiberServer) {
  struct Client : net::Protocol {
    net::Transport* t = nullptr;
    std::string got;
    weave::Event done;
    void connection_made(net::Transport& tr) override {
      t = &tr;
      tr.write("ping\n");
    }
    void data_received(std::string_view d) override {
      got.append(d);
      if (got.size() >= 5) t->close();
    }
    void connection_lost(std::exception_ptr) override { done.set(); }
  };
  weave::Loop loop;
  auto server = net::start_server(
      [](net::Stream& s) {
        std::string line = s.read_line();
        s.write("pong\n");
        s.drain();
      },
      "127.0.0.1", 0);
  auto client = loop.spawn([&] {
    net::TransportPtr t = net::create_connection([] { return std::make_unique<Client>(); },
                                                 "127.0.0.1", server.port());
    Client& c = t->protocol_as<Client>();
    c.done.wait();
    EXPECT_TRUE(t->is_closing());
    EXPECT_EQ(t->fd(), -1);
    t->write("after the end: dropped");
    return c.got;
  });
  EXPECT_EQ(loop.run_until_complete(client), "pong\n");
  server.close();
  loop.run_until_complete(loop.spawn([&] { server.wait_closed(); }));
}

TEST(CreateConnection, ARefusedConnectionThrowsAndNeverMakesTheProtocol) {
  weave::Loop loop;
  // A port with nothing listening: bind one and close it.
  std::uint16_t port;
  {
    auto s = echo_server(loop);
    port = s.port();
  }
  bool made = false;
  auto client = loop.spawn([&] {
    net::create_connection(
        [&] {
          made = true;
          return std::make_unique<Echo>();
        },
        net::SocketAddress::ipv4_loopback(port));
  });
  try {
    loop.run_until_complete(client);
    ADD_FAILURE() << "connected to a closed port";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code().value(), ECONNREFUSED);
  }
  EXPECT_FALSE(made);
}

TEST(CreateConnection, ACancelledConnectNeverMakesTheProtocolAndLeaksNothing) {
  weave::Loop loop;
  auto server = echo_server(loop);
  const int fds_before = open_fds();
  bool made = false;
  auto client = loop.spawn([&] {
    weave::current_task().cancel();  // pending: the connect's checkpoint throws it
    net::create_connection(
        [&] {
          made = true;
          return std::make_unique<Echo>();
        },
        net::SocketAddress::ipv4_loopback(server.port()));
  });
  loop.run_until_complete(loop.spawn([&] { client.join(); }));
  EXPECT_TRUE(client.cancelled());
  EXPECT_FALSE(made);
  EXPECT_EQ(open_fds(), fds_before);
  shut(loop, server);
}

TEST(CreateConnection, OutsideAFiberIsAnError) {
  weave::Loop loop;
  EXPECT_THROW(net::create_connection([] { return std::make_unique<Echo>(); },
                                      net::SocketAddress::ipv4_loopback(1)),
               std::logic_error);
}

// ---- handing a connection to a fiber ---------------------------------------------------------

// The protocol reads a header line, then hands the connection to a fiber with the bytes that
// came after the header in the same read: the fiber must see every byte, in order.
TEST(HandOff, AFiberGetsTheConnectionWithNoByteLost) {
  struct Switcher : net::Protocol {
    net::Transport* t = nullptr;
    std::string buffered;
    std::vector<weave::Task<std::string>>* fibers;
    explicit Switcher(std::vector<weave::Task<std::string>>* f) : fibers(f) {}
    void connection_made(net::Transport& tr) override { t = &tr; }
    void data_received(std::string_view d) override {
      buffered.append(d);
      auto nl = buffered.find('\n');
      if (nl == std::string::npos) return;
      EXPECT_EQ(buffered.substr(0, nl), "SWITCH");
      t->write("switching\n");  // still the transport's: must reach the peer before the fiber's
      fibers->push_back(t->hand_to_fiber(
          [](net::Stream& s) {
            std::string all;
            for (const std::string& line : s.lines()) {
              all += line + "\n";  // lines() drops it
              s.write("fiber: " + line + "\n");
            }
            return all;
          },
          std::string_view(buffered).substr(nl + 1)));
      EXPECT_TRUE(t->is_closing());
      EXPECT_EQ(t->fd(), -1);
    }
    void connection_lost(std::exception_ptr) override { ADD_FAILURE() << "not after a hand-off"; }
  };
  weave::Loop loop;
  std::vector<weave::Task<std::string>> fibers;
  auto server = net::create_server([&] { return std::make_unique<Switcher>(&fibers); },
                                   {net::SocketAddress::ipv4_loopback(0)}, {}, loop);
  auto client = loop.spawn([&] {
    net::Stream s = net::open_connection("127.0.0.1", server.port());
    // The header and two lines in one segment: the lines arrive with the header's read.
    s.write("SWITCH\nline 1\nline 2\n");
    std::string got = s.read_line();
    got += s.read_line();
    s.write("line 3\n");
    got += s.read_line();
    got += s.read_line();
    s.shutdown_write();
    EXPECT_EQ(read_all(s), "");
    return got;
  });
  EXPECT_EQ(loop.run_until_complete(client),
            "switching\nfiber: line 1\nfiber: line 2\nfiber: line 3\n");
  ASSERT_EQ(fibers.size(), 1u);
  EXPECT_EQ(loop.run_until_complete(fibers[0]), "line 1\nline 2\nline 3\n");
  EXPECT_EQ(server.connection_count(), 0u);  // handed off: no longer the server's
  shut(loop, server);
}

TEST(HandOff, DetachOnAClosingTransportIsAnError) {
  struct Late : net::Protocol {
    void connection_made(net::Transport& tr) override {
      tr.close();
      EXPECT_THROW(tr.detach(), std::logic_error);
    }
  };
  weave::Loop loop;
  auto server = net::create_server([] { return std::make_unique<Late>(); },
                                   {net::SocketAddress::ipv4_loopback(0)}, {}, loop);
  auto client = loop.spawn([&] {
    net::Stream s = net::open_connection("127.0.0.1", server.port());
    return read_all(s);
  });
  EXPECT_EQ(loop.run_until_complete(client), "");
  shut(loop, server);
}

// ---- servers ---------------------------------------------------------------------------------

TEST(ProtocolServer, RunsBesideAFiberServerOnTheSameLoop) {
  weave::Loop loop;
  auto callbacks = echo_server(loop);
  auto fibers = net::start_server(
      [](net::Stream& s) {
        // lines() drops the "\n"
        for (const std::string& line : s.lines()) s.write("fiber " + line + "\n");
      },
      "127.0.0.1", 0);
  auto talk = [&](std::uint16_t port, std::string what) {
    return loop.spawn([port, what] {
      net::Stream s = net::open_connection("127.0.0.1", port);
      std::string got;
      for (int i = 0; i < 20; ++i) {
        s.write(what + std::to_string(i) + "\n");
        got = s.read_line();
      }
      return got;
    });
  };
  std::vector<weave::Task<std::string>> clients;
  for (int i = 0; i < 10; ++i) {
    clients.push_back(talk(callbacks.port(), "cb"));
    clients.push_back(talk(fibers.port(), "fb"));
  }
  for (int i = 0; i < 20; ++i)
    EXPECT_EQ(loop.run_until_complete(clients[static_cast<std::size_t>(i)]),
              i % 2 == 0 ? "cb19\n" : "fiber fb19\n");
  fibers.close();
  fibers.close_clients();
  loop.run_until_complete(loop.spawn([&] { fibers.wait_closed(); }));
  shut(loop, callbacks);
}

TEST(ProtocolServer, CloseStopsAcceptingAndWaitClosedWaitsForTheConnections) {
  weave::Loop loop;
  auto server = echo_server(loop);
  const std::uint16_t port = server.port();
  auto t = loop.spawn([&] {
    net::Stream s = net::open_connection("127.0.0.1", port);
    s.write("a");
    EXPECT_EQ(s.read(1), "a");
    server.close();
    EXPECT_FALSE(server.is_serving());
    EXPECT_THROW(net::open_connection("127.0.0.1", port), std::system_error);
    // The old connection still works.
    s.write("b");
    EXPECT_EQ(s.read(1), "b");
    bool waited = false;
    auto waiter = weave::spawn([&] {
      server.wait_closed();
      waited = true;
    });
    weave::this_fiber::sleep_for(2ms);
    EXPECT_FALSE(waited);  // a connection is still alive
    s.close();
    waiter.join();
    EXPECT_TRUE(waited);
  });
  loop.run_until_complete(t);
}

TEST(ProtocolServer, ServeForeverReturnsOnCloseAndClosesWhenCancelled) {
  weave::Loop loop;
  auto server = echo_server(loop);
  auto serving = loop.spawn([&] { server.serve_forever(); });
  loop.call_soon([&] { server.close(); });
  loop.run_until_complete(serving);
  auto server2 = echo_server(loop);
  auto serving2 = loop.spawn([&] { server2.serve_forever(); });
  loop.call_soon([&] { serving2.cancel(); });
  loop.run_until_complete(loop.spawn([&] { serving2.join(); }));
  EXPECT_TRUE(serving2.cancelled());
  EXPECT_FALSE(server2.is_serving());
}

TEST(ProtocolServer, AFailingFactoryIsReportedAndTheServerGoesOn) {
  weave::Loop loop;
  std::vector<std::string> reports;
  loop.set_exception_handler([&](const weave::ErrorContext& c) { reports.push_back(c.message); });
  int calls = 0;
  auto server = net::create_server(
      [&]() -> std::unique_ptr<net::Protocol> {
        if (++calls == 1) throw std::runtime_error("no protocol for you");
        if (calls == 2) return nullptr;
        return std::make_unique<Echo>();
      },
      {net::SocketAddress::ipv4_loopback(0)}, {}, loop);
  auto client = loop.spawn([&] {
    for (int i = 0; i < 2; ++i) {
      net::Stream s = net::open_connection("127.0.0.1", server.port());
      EXPECT_EQ(s.read(1), "");  // closed at once
    }
    net::Stream s = net::open_connection("127.0.0.1", server.port());
    s.write("z");
    return s.read(1);
  });
  EXPECT_EQ(loop.run_until_complete(client), "z");
  shut(loop, server);
  EXPECT_EQ(reports.size(), 2u);
}

TEST(ProtocolServer, ManyConnectionsLeaveNoFdBehind) {
  const int kClients = kSanitized ? 100 : 1000;
  const int fds_before = open_fds();
  {
    weave::Loop loop;
    auto server = echo_server(loop);
    std::vector<weave::Task<void>> clients;
    for (int i = 0; i < kClients; ++i)
      clients.push_back(loop.spawn([&, i] {
        net::Stream s = net::open_connection("127.0.0.1", server.port());
        std::string msg = "message " + std::to_string(i);
        s.write(msg);
        EXPECT_EQ(s.read_exactly(msg.size()), msg);
        if (i % 10 == 0) {
          linger l{1, 0};  // some reset instead of closing
          ::setsockopt(s.fd(), SOL_SOCKET, SO_LINGER, &l, sizeof l);
          s.abort();
        }
      }));
    for (auto& c : clients) loop.run_until_complete(c);
    EXPECT_EQ(server.accepted_count(), static_cast<std::size_t>(kClients));
    server.close();
    loop.run_until_complete(loop.spawn([&] { server.wait_closed(); }));
    EXPECT_EQ(loop.live_fibers(), 0u);
  }
  EXPECT_EQ(open_fds(), fds_before);
}

// With the fd limit lowered, accept() fails with EMFILE: the server must stop polling the
// listener (no busy loop), report it once, and accept the waiting connections once its own
// connections close. Run in a child process so the limit does not touch the other tests.
//
// Under UBSan, the first virtual call on each dynamic type is checked with the help of a pipe,
// which cannot be made while the process is out of fds; so the child does everything in one
// fiber and makes one whole connection before lowering the limit, and no type is met for the
// first time while fds are short.
TEST(ProtocolServer, OutOfFdsBacksOffWithoutSpinningAndRecovers) {
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    int code = 0;
    {
      weave::Loop loop;
      int reports = 0;
      loop.set_exception_handler([&](const weave::ErrorContext& c) {
        if (c.message.find("EMFILE") != std::string::npos) ++reports;
      });
      auto server = echo_server(loop);
      auto body = loop.spawn([&] {
        auto check = [&](bool ok, int bit) {
          if (!ok) code |= bit;
        };
        {
          net::Stream s = net::open_connection("127.0.0.1", server.port());
          s.write("x");
          s.read(1);
          s.shutdown_write();
          s.read(1);
        }
        while (server.connection_count() > 0) weave::this_fiber::sleep_for(1ms);
        const std::size_t kClients = 8;
        rlimit lim{};
        ::getrlimit(RLIMIT_NOFILE, &lim);
        // Room for the clients' own sockets and 3 accepted ones.
        lim.rlim_cur = static_cast<rlim_t>(open_fds() + kClients + 3);
        ::setrlimit(RLIMIT_NOFILE, &lim);
        std::vector<int> clients;
        for (std::size_t i = 0; i < kClients; ++i) {
          // Blocking connects: the kernel completes them into the listener's backlog.
          int c = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
          sockaddr_in a{};
          a.sin_family = AF_INET;
          a.sin_port = htons(server.port());
          a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
          if (c < 0 || ::connect(c, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) _exit(100);
          clients.push_back(c);
        }
        // Let the server hit the limit, then measure the CPU it uses while it waits.
        weave::this_fiber::sleep_for(20ms);
        rusage r0{}, r1{};
        ::getrusage(RUSAGE_SELF, &r0);
        auto t0 = std::chrono::steady_clock::now();
        weave::this_fiber::sleep_for(200ms);
        ::getrusage(RUSAGE_SELF, &r1);
        auto wall = std::chrono::steady_clock::now() - t0;
        auto cpu = std::chrono::seconds(r1.ru_utime.tv_sec - r0.ru_utime.tv_sec) +
                   std::chrono::microseconds(r1.ru_utime.tv_usec - r0.ru_utime.tv_usec) +
                   std::chrono::seconds(r1.ru_stime.tv_sec - r0.ru_stime.tv_sec) +
                   std::chrono::microseconds(r1.ru_stime.tv_usec - r0.ru_stime.tv_usec);
        double cpu_share = std::chrono::duration<double>(cpu) / std::chrono::duration<double>(wall);
        check(cpu_share < 0.3, 1);
        check(server.accepted_count() < kClients + 1, 2);
        check(reports >= 1, 4);
        // Free fds: the accepted connections see EOF and close, and the rest get accepted.
        for (int c : clients) ::shutdown(c, SHUT_WR);
        for (int i = 0; i < 2000 && server.accepted_count() < kClients + 1; ++i)
          weave::this_fiber::sleep_for(1ms);
        check(server.accepted_count() == kClients + 1, 8);
        for (int c : clients) ::close(c);
        server.close();
        server.close_clients();
        server.wait_closed();
      });
      loop.run_until_complete(body);
    }
    _exit(code);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "bits: 1 spinning, 2 accepted all at once, 4 no EMFILE "
                                       "report, 8 did not recover, 100 setup";
}

}  // namespace
