#pragma once
// Helpers shared by the HTTP tests: a real-time run with leak checks, and a raw response
// reader for scripted peers.

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <string>

#include "net_test_util.hpp"
#include "weave/cancel_scope.hpp"
#include "weave/loop.hpp"
#include "weave/net/stream.hpp"
#include "weave/task.hpp"

namespace weave_test {

/// Runs `body` in a fiber on a real-time loop (the tests use real sockets and limits of a few
/// hundred milliseconds), failing it after 10 s instead of hanging, then checks that no fiber
/// or fd is left.
template <class F>
void run_http(F body) {
  using namespace std::chrono_literals;
  int before = open_fd_count();
  {
    weave::Loop loop;
    auto t = loop.spawn([&] { weave::fail_after(10s, body); });
    loop.run_until_complete(t);
    loop.run();  // what the body left behind (server fibers finishing)
    EXPECT_EQ(loop.live_fibers(), 0u);
  }
  EXPECT_EQ(open_fd_count(), before) << "an fd leaked";
}

/// One raw HTTP response: the status line and fields as text, and the body.
struct RawResponse {
  int status = 0;
  std::string head;
  std::string body;
  bool has(const std::string& text) const { return head.find(text) != std::string::npos; }
};

/// Reads one response with a Content-Length body (or none, for `head_only`) from `s`.
inline RawResponse read_raw_response(weave::net::Stream& s, bool head_only = false) {
  RawResponse r;
  r.head = s.read_until("\r\n\r\n");
  r.status = std::atoi(r.head.substr(9, 3).c_str());
  auto pos = r.head.find("Content-Length: ");
  if (pos != std::string::npos && !head_only) {
    std::size_t n = std::strtoul(r.head.c_str() + pos + 16, nullptr, 10);
    r.body = s.read_exactly(n);
  }
  return r;
}

}  // namespace weave_test
