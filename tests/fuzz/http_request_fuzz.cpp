// libFuzzer target for the HTTP server's request path: the input's bytes are delivered to
// weave::net::http::serve_connection() (the routine that serves every real connection)
// through a real socketpair, split into pieces at points the input chooses, and the
// responses are read back from the other end.
//
// Input format: byte 0 says how many split points follow (byte 0 % 8), each a 16-bit
// little-endian offset into the rest of the input (taken modulo its size); the rest is what
// the client sends. After the last piece the client half-closes and reads until the server
// closes.
//
// Oracles: no crash, leak or sanitizer report; serve_connection() returns; every response
// starts with a status line; nothing the server sends holds a NUL.

#include <sys/ioctl.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

#include "weave/errors.hpp"
#include "weave/loop.hpp"
#include "weave/net/http.hpp"
#include "weave/net/socket.hpp"
#include "weave/net/stream.hpp"
#include "weave/task.hpp"
#include "weave/this_fiber.hpp"

namespace {

namespace http = weave::net::http;
using namespace std::chrono_literals;

http::Response handle(const http::Request& req) {
  auto path = req.path();
  if (path == "/throw") throw std::runtime_error("handler failure");
  // The body is summed up, not echoed: a request body may hold any byte, and the oracle below
  // checks that no NUL reaches the output.
  std::uint32_t sum = 2166136261u;  // FNV-1a
  for (unsigned char c : req.body) sum = (sum ^ c) * 16777619u;
  http::Response r(200, req.method + " " + std::string(path) + " " +
                            std::to_string(req.headers.size()) + " " +
                            std::to_string(req.body.size()) + " " + std::to_string(sum));
  if (path == "/stream") {
    auto left = std::make_shared<int>(3);
    r.body_source = [left](std::span<char> buf) -> std::size_t {
      if (*left == 0) return 0;
      --*left;
      std::fill_n(buf.data(), 100, 's');
      return 100;
    };
    if (req.query() == "sized") r.headers.set("Content-Length", "300");
  } else if (path == "/close") {
    r.headers.set("Connection", "close");
  } else if (path == "/empty") {
    r = http::Response(204, {}, {});
  }
  return r;
}

http::ServerOptions options() {
  http::ServerOptions o;
  o.max_header_bytes = 1024;
  o.max_body_bytes = 2048;
  // The client always half-closes, so no wait lasts long; these only bound a bug.
  o.header_timeout = 5s;
  o.body_timeout = 5s;
  o.idle_timeout = 5s;
  o.on_handler_error = [](std::exception_ptr) {};
  return o;
}

void run_one(const std::vector<std::string>& pieces) {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) != 0) std::abort();
  const int server_fd = fds[0];
  weave::net::Stream server_end(fds[0]);
  weave::net::Stream client_end(fds[1]);
  static const http::ServerOptions o = options();
  bool server_done = false;

  auto server = weave::spawn([&] {
    try {
      http::serve_connection(server_end, handle, o);
    } catch (const std::system_error&) {
      // The client end went away (it never does here, but that is allowed).
    }
    server_done = true;
    server_end.close();
  });
  auto writer = weave::spawn([&] {
    try {
      for (const auto& piece : pieces) {
        client_end.write(piece);
        client_end.drain();
        // Let the server read this piece on its own before the next one arrives, so that
        // the split points reach the parser.
        for (int i = 0; i < 64 && !server_done; ++i) {
          int pending = 0;
          if (::ioctl(server_fd, FIONREAD, &pending) != 0 || pending == 0) break;
          weave::this_fiber::yield();
        }
        weave::this_fiber::yield();
      }
      client_end.shutdown_write();
    } catch (const std::system_error&) {
      // The server closed first (a 400 and close): the rest is not delivered.
    }
  });
  std::string out;
  try {
    out = client_end.read_to_eof();
  } catch (const std::system_error&) {
  }
  writer.join();
  server.join();
  if (!out.empty() && out.rfind("HTTP/1.1 ", 0) != 0 && out.rfind("HTTP/1.0 ", 0) != 0)
    std::abort();
  if (out.find('\0') != std::string::npos) std::abort();
  client_end.close();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  std::size_t splits = data[0] % 8;
  std::size_t header = 1 + 2 * splits;
  if (size < header) return 0;
  std::string_view payload(reinterpret_cast<const char*>(data + header), size - header);
  std::vector<std::size_t> cuts;
  for (std::size_t i = 0; i < splits && !payload.empty(); ++i)
    cuts.push_back((data[1 + 2 * i] | (data[2 + 2 * i] << 8)) % payload.size());
  std::sort(cuts.begin(), cuts.end());
  std::vector<std::string> pieces;
  std::size_t at = 0;
  for (std::size_t c : cuts) {
    if (c > at) pieces.emplace_back(payload.substr(at, c - at));
    at = std::max(at, c);
  }
  if (at < payload.size()) pieces.emplace_back(payload.substr(at));

  // One loop for the whole run (made once, never destroyed: it stays reachable).
  static weave::Loop* loop = new weave::Loop;
  auto t = loop->spawn([&] { run_one(pieces); });
  loop->run_until_complete(t);
  loop->run();  // the streams' background senders
  return 0;
}
