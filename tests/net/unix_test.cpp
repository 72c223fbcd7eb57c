// Unix-domain stream sockets: open_unix_connection() and start_unix_server().

#include "weave/net/unix.hpp"
// ^ first, on its own: proves the header under test is self-contained

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <string>
#include <system_error>

#include "net_test_util.hpp"
#include "virtual_time.hpp"
#include "weave/loop.hpp"
#include "weave/net/socket.hpp"
#include "weave/task.hpp"

namespace {

using weave::net::Stream;

std::string temp_socket_path(const char* name) {
  return "/tmp/weave-unix-test-" + std::to_string(::getpid()) + "-" + name + ".sock";
}

bool exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

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

void echo_line(Stream& s) { s.write(s.read_line()); }

TEST(UnixSocket, EchoThroughAFileSocketWhichCloseRemoves) {
  std::string path = temp_socket_path("echo");
  run([&] {
    auto server = weave::net::start_unix_server(echo_line, path);
    EXPECT_TRUE(exists(path));
    EXPECT_EQ(server.addresses().at(0).to_string(), path);
    Stream c = weave::net::open_unix_connection(path);
    c.write("over a unix socket\n");
    EXPECT_EQ(c.read_line(), "over a unix socket\n");
    server.close();
    EXPECT_FALSE(exists(path));
    server.wait_closed();
  });
}

TEST(UnixSocket, AStaleSocketFileIsReplaced) {
  std::string path = temp_socket_path("stale");
  {
    // A socket file left behind by a process that died without cleaning up.
    auto fd = weave::net::listen_socket(weave::net::SocketAddress::unix_path(path));
  }
  ASSERT_TRUE(exists(path));
  run([&] {
    auto server = weave::net::start_unix_server(echo_line, path);
    Stream c = weave::net::open_unix_connection(path);
    c.write("fresh\n");
    EXPECT_EQ(c.read_line(), "fresh\n");
    server.close();
  });
  EXPECT_FALSE(exists(path));
}

TEST(UnixSocket, ARegularFileIsNotRemoved) {
  std::string path = temp_socket_path("regular");
  std::FILE* f = std::fopen(path.c_str(), "w");
  ASSERT_NE(f, nullptr);
  std::fclose(f);
  run([&] {
    try {
      weave::net::start_unix_server(echo_line, path);
      ADD_FAILURE() << "bound over a regular file";
    } catch (const std::system_error& e) {
      EXPECT_EQ(e.code().value(), EADDRINUSE);
    }
  });
  EXPECT_TRUE(exists(path));
  ::unlink(path.c_str());
}

TEST(UnixSocket, AbstractNamespaceNeedsNoFile) {
  std::string name = "@weave-unix-test-" + std::to_string(::getpid());
  run([&] {
    auto server = weave::net::start_unix_server(echo_line, name);
    EXPECT_TRUE(server.addresses().at(0).is_abstract());
    EXPECT_EQ(server.addresses().at(0).to_string(), name);
    Stream c = weave::net::open_unix_connection(name);
    c.write("abstract\n");
    EXPECT_EQ(c.read_line(), "abstract\n");
    server.close();
  });
}

TEST(UnixSocket, ConnectingToNothingFailsClearly) {
  run([] {
    try {
      weave::net::open_unix_connection(temp_socket_path("nobody"));
      ADD_FAILURE() << "connected";
    } catch (const std::system_error& e) {
      EXPECT_EQ(e.code().value(), ENOENT);
    }
    EXPECT_THROW(weave::net::open_unix_connection(std::string(200, 'x')), std::invalid_argument);
  });
}

}  // namespace
