// weave::net::http::serve and serve_connection against raw sockets: keep-alive, pipelining,
// HTTP/1.0, limits, slowloris, handler exceptions, 100-continue, HEAD, streamed bodies.

#include "weave/net/http.hpp"
// ^ first, on its own: proves the header under test is self-contained

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include "http_test_util.hpp"
#include "weave/cancel_scope.hpp"
#include "weave/errors.hpp"
#include "weave/loop.hpp"
#include "weave/net/stream.hpp"
#include "weave/task.hpp"
#include "weave/this_fiber.hpp"

namespace {

using namespace std::chrono_literals;
namespace http = weave::net::http;
using weave::net::Stream;
using weave_test::read_raw_response;
using weave_test::run_http;

// Echoes the method, target and body: "GET /x |body".
http::Response echo(const http::Request& req) {
  return http::Response(200, req.method + " " + req.target + " |" + req.body);
}

Stream connect(const http::Server& s) { return weave::net::open_connection("127.0.0.1", s.port()); }

TEST(HttpServer, AnswersAndKeepsTheConnection) {
  run_http([] {
    auto server = http::serve(echo, "127.0.0.1", 0);
    Stream c = connect(server);
    for (int i = 0; i < 3; ++i) {
      c.write("GET /a?b=" + std::to_string(i) + " HTTP/1.1\r\nHost: x\r\n\r\n");
      auto r = read_raw_response(c);
      EXPECT_EQ(r.status, 200);
      EXPECT_EQ(r.body, "GET /a?b=" + std::to_string(i) + " |");
      EXPECT_TRUE(r.has("Content-Type: text/plain; charset=utf-8\r\n"));
      EXPECT_TRUE(r.has("Server: weave\r\n"));
      EXPECT_TRUE(r.has("Date: "));
      EXPECT_FALSE(r.has("Connection: close"));
    }
    EXPECT_EQ(server.connection_count(), 1u);
    c.close();
    server.close();
    server.wait_closed();
  });
}

TEST(HttpServer, PipelinedRequestsAreAnsweredInOrder) {
  run_http([] {
    auto server = http::serve(
        [](const http::Request& req) {
          // The first request is the slowest: order must still hold.
          if (req.target == "/1") weave::this_fiber::sleep_for(5ms);
          return echo(req);
        },
        "127.0.0.1", 0);
    Stream c = connect(server);
    // Three requests in one write, the third split in two writes across a body.
    c.write(
        "GET /1 HTTP/1.1\r\nHost: x\r\n\r\n"
        "POST /2 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
        "POST /3 HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\nwor");
    c.drain();
    weave::this_fiber::sleep_for(2ms);
    c.write("ld!");
    EXPECT_EQ(read_raw_response(c).body, "GET /1 |");
    EXPECT_EQ(read_raw_response(c).body, "POST /2 |hello");
    EXPECT_EQ(read_raw_response(c).body, "POST /3 |world!");
    server.close();
  });
}

TEST(HttpServer, ChunkedRequestBodyIsDecoded) {
  run_http([] {
    auto server = http::serve(echo, "127.0.0.1", 0);
    Stream c = connect(server);
    c.write(
        "POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        "5\r\nhello\r\n1;ext=1\r\n \r\n5\r\nworld\r\n0\r\nTrailer: t\r\n\r\n");
    EXPECT_EQ(read_raw_response(c).body, "POST /c |hello world");
    server.close();
  });
}

TEST(HttpServer, Http10ClosesUnlessKeepAlive) {
  run_http([] {
    auto server = http::serve(echo, "127.0.0.1", 0);
    {
      Stream c = connect(server);
      c.write("GET /old HTTP/1.0\r\n\r\n");
      std::string all = c.read_to_eof();
      EXPECT_EQ(all.rfind("HTTP/1.0 200 OK\r\n", 0), 0u) << all;
      EXPECT_NE(all.find("Connection: close\r\n"), std::string::npos);
      EXPECT_NE(all.find("GET /old |"), std::string::npos);
    }
    {
      Stream c = connect(server);
      c.write("GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
      auto r = read_raw_response(c);
      EXPECT_TRUE(r.has("Connection: keep-alive\r\n"));
      c.write("GET /b HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
      EXPECT_EQ(read_raw_response(c).body, "GET /b |");
    }
    server.close();
  });
}

TEST(HttpServer, ConnectionCloseFromEitherSide) {
  run_http([] {
    auto server = http::serve(
        [](const http::Request& req) {
          http::Response r = echo(req);
          if (req.target == "/bye") r.headers.set("Connection", "close");
          return r;
        },
        "127.0.0.1", 0);
    {
      Stream c = connect(server);
      c.write("GET / HTTP/1.1\r\nConnection: close\r\n\r\n");
      auto r = read_raw_response(c);
      EXPECT_TRUE(r.has("Connection: close\r\n"));
      EXPECT_EQ(c.read(100), "");  // and the server closed
    }
    {
      Stream c = connect(server);
      // The pipelined request after a closing response is not answered.
      c.write("GET /bye HTTP/1.1\r\n\r\nGET /late HTTP/1.1\r\n\r\n");
      auto r = read_raw_response(c);
      EXPECT_EQ(r.body, "GET /bye |");
      EXPECT_TRUE(r.has("Connection: close\r\n"));
      EXPECT_EQ(c.read_to_eof(), "");
    }
    server.close();
  });
}

TEST(HttpServer, MalformedRequestGets400AndClose) {
  run_http([] {
    auto server = http::serve(echo, "127.0.0.1", 0);
    for (std::string bad :
         {"GARBAGE\r\n\r\n", "GET / HTTP/1.1\r\nBad Header\r\n\r\n", "GET / HTTP/9.9\r\n\r\n",
          "POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabc",
          "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"}) {
      Stream c = connect(server);
      c.write(bad);
      auto r = read_raw_response(c);
      EXPECT_EQ(r.status, 400) << bad;
      EXPECT_TRUE(r.has("Connection: close"));
      EXPECT_EQ(c.read_to_eof(), "");
    }
    server.close();
  });
}

TEST(HttpServer, HeaderOverTheLimitGets431) {
  run_http([] {
    http::ServerOptions o;
    o.max_header_bytes = 1024;
    auto server = http::serve(echo, "127.0.0.1", 0, o);
    Stream c = connect(server);
    c.write("GET / HTTP/1.1\r\nX-Big: " + std::string(4000, 'a') + "\r\n\r\n");
    auto r = read_raw_response(c);
    EXPECT_EQ(r.status, 431);
    EXPECT_EQ(c.read_to_eof(), "");
    // Just under the limit is fine.
    Stream d = connect(server);
    d.write("GET / HTTP/1.1\r\nX-Big: " + std::string(900, 'a') + "\r\n\r\n");
    EXPECT_EQ(read_raw_response(d).status, 200);
    server.close();
  });
}

TEST(HttpServer, BodyOverTheLimitGets413) {
  run_http([] {
    http::ServerOptions o;
    o.max_body_bytes = 100;
    auto server = http::serve(echo, "127.0.0.1", 0, o);
    {
      Stream c = connect(server);  // declared length: refused before the body
      c.write("POST / HTTP/1.1\r\nContent-Length: 101\r\n\r\n");
      EXPECT_EQ(read_raw_response(c).status, 413);
      EXPECT_EQ(c.read_to_eof(), "");
    }
    {
      Stream c = connect(server);  // chunked: refused when it grows past the limit
      c.write("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n64\r\n" +
              std::string(100, 'x') + "\r\n1\r\ny\r\n0\r\n\r\n");
      EXPECT_EQ(read_raw_response(c).status, 413);
    }
    {
      Stream c = connect(server);
      c.write("POST / HTTP/1.1\r\nContent-Length: 100\r\n\r\n" + std::string(100, 'x'));
      EXPECT_EQ(read_raw_response(c).status, 200);
    }
    server.close();
  });
}

TEST(HttpServer, SlowlorisIsDroppedWhileOthersAreServed) {
  run_http([] {
    http::ServerOptions o;
    o.header_timeout = 200ms;
    auto server = http::serve(echo, "127.0.0.1", 0, o);
    auto start = std::chrono::steady_clock::now();
    auto slow = weave::spawn([&] {
      Stream c = connect(server);
      std::string req =
          "GET /slow HTTP/1.1\r\nHost: x\r\nX-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
      std::size_t sent = 0;
      std::string got;
      try {
        // A byte every 20 ms (1.4 s for the whole header), watching for the server's answer.
        for (; sent < req.size(); ++sent) {
          c.write(req.substr(sent, 1));
          auto answer = weave::move_on_after(20ms, [&] { return c.read(4096); });
          if (answer) {
            got = *answer + c.read_to_eof();
            break;
          }
        }
      } catch (const std::system_error&) {
      }
      return std::make_pair(sent, got);
    });
    // A normal client on the same server meanwhile.
    for (int i = 0; i < 5; ++i) {
      Stream c = connect(server);
      c.write("GET /fast HTTP/1.1\r\n\r\n");
      EXPECT_EQ(read_raw_response(c).body, "GET /fast |");
      weave::this_fiber::sleep_for(10ms);
    }
    slow.join();
    auto [sent, got] = slow.get();
    auto elapsed = std::chrono::steady_clock::now() - start;
    EXPECT_LT(sent, 60u) << "the slow client was allowed to finish its header";
    EXPECT_GE(elapsed, 200ms);
    EXPECT_EQ(got.rfind("HTTP/1.1 408", 0), 0u) << got;
    server.close();
  });
}

TEST(HttpServer, SilentConnectionIsClosedAtTheHeaderTimeout) {
  run_http([] {
    http::ServerOptions o;
    o.header_timeout = 50ms;
    auto server = http::serve(echo, "127.0.0.1", 0, o);
    Stream c = connect(server);
    EXPECT_EQ(c.read_to_eof(), "");  // nothing was sent: closed quietly
    server.close();
  });
}

TEST(HttpServer, IdleKeepAliveConnectionIsClosed) {
  run_http([] {
    http::ServerOptions o;
    o.idle_timeout = 50ms;
    auto server = http::serve(echo, "127.0.0.1", 0, o);
    Stream c = connect(server);
    c.write("GET / HTTP/1.1\r\n\r\n");
    EXPECT_EQ(read_raw_response(c).status, 200);
    auto start = std::chrono::steady_clock::now();
    EXPECT_EQ(c.read_to_eof(), "");
    EXPECT_GE(std::chrono::steady_clock::now() - start, 50ms);
    server.close();
  });
}

TEST(HttpServer, HandlerExceptionGives500AndTheConnectionGoesOn) {
  run_http([] {
    int reported = 0;
    http::ServerOptions o;
    o.on_handler_error = [&](std::exception_ptr e) {
      ++reported;
      EXPECT_THROW(std::rethrow_exception(e), std::runtime_error);
    };
    auto server = http::serve(
        [](const http::Request& req) -> http::Response {
          if (req.target == "/boom") throw std::runtime_error("boom");
          return echo(req);
        },
        "127.0.0.1", 0, o);
    Stream c = connect(server);
    c.write("GET /boom HTTP/1.1\r\n\r\nGET /ok HTTP/1.1\r\n\r\n");
    EXPECT_EQ(read_raw_response(c).status, 500);
    EXPECT_EQ(read_raw_response(c).body, "GET /ok |");
    EXPECT_EQ(reported, 1);
    server.close();
  });
}

TEST(HttpServer, ExpectContinue) {
  run_http([] {
    http::ServerOptions o;
    o.max_body_bytes = 1000;
    auto server = http::serve(echo, "127.0.0.1", 0, o);
    Stream c = connect(server);
    c.write("POST /up HTTP/1.1\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n");
    EXPECT_EQ(c.read_until("\r\n\r\n"), "HTTP/1.1 100 Continue\r\n\r\n");
    c.write("data");
    EXPECT_EQ(read_raw_response(c).body, "POST /up |data");
    // Over the limit: the final 413 instead of the go-ahead.
    c.write("POST /up HTTP/1.1\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n");
    EXPECT_EQ(read_raw_response(c).status, 413);
    server.close();
  });
}

TEST(HttpServer, HeadHasNoBody) {
  run_http([] {
    auto server = http::serve(echo, "127.0.0.1", 0);
    Stream c = connect(server);
    c.write("HEAD /h HTTP/1.1\r\n\r\nGET /g HTTP/1.1\r\n\r\n");
    auto r = read_raw_response(c, /*head_only=*/true);
    EXPECT_EQ(r.status, 200);
    EXPECT_TRUE(r.has("Content-Length: 9\r\n"));  // "HEAD /h |"
    EXPECT_EQ(read_raw_response(c).body, "GET /g |");
    server.close();
  });
}

TEST(HttpServer, StreamedBodies) {
  run_http([] {
    auto server = http::serve(
        [](const http::Request& req) {
          http::Response r(200, {}, "application/octet-stream");
          auto left = std::make_shared<std::size_t>(200 * 1024);
          r.body_source = [left](std::span<char> buf) {
            std::size_t n = std::min(*left, buf.size());
            std::fill_n(buf.data(), n, 'z');
            *left -= n;
            return n;
          };
          if (req.target == "/sized") r.headers.set("Content-Length", std::to_string(200 * 1024));
          return r;
        },
        "127.0.0.1", 0);
    {
      Stream c = connect(server);
      c.write("GET /sized HTTP/1.1\r\n\r\n");
      auto r = read_raw_response(c);
      EXPECT_EQ(r.body, std::string(200 * 1024, 'z'));
    }
    {
      Stream c = connect(server);
      c.write("GET /chunked HTTP/1.1\r\nConnection: close\r\n\r\n");
      std::string all = c.read_to_eof();
      EXPECT_NE(all.find("Transfer-Encoding: chunked\r\n"), std::string::npos);
      EXPECT_NE(all.find("\r\n0\r\n\r\n"), std::string::npos);
    }
    {
      Stream c = connect(server);
      c.write("GET /old HTTP/1.0\r\n\r\n");
      std::string all = c.read_to_eof();
      auto head_end = all.find("\r\n\r\n");
      ASSERT_NE(head_end, std::string::npos);
      EXPECT_EQ(all.size() - head_end - 4, 200u * 1024);
      EXPECT_NE(all.find("Connection: close"), std::string::npos);
    }
    server.close();
  });
}

// A body of `n` bytes, in memory (any target) or streamed ("/stream").
http::Response big_response(const http::Request& req, std::size_t n) {
  if (req.target != "/stream") return http::Response(200, std::string(n, 'b'));
  http::Response r(200, {}, "application/octet-stream");
  auto left = std::make_shared<std::size_t>(n);
  r.body_source = [left](std::span<char> buf) {
    std::size_t k = std::min(*left, buf.size());
    std::fill_n(buf.data(), k, 'b');
    *left -= k;
    return k;
  };
  return r;
}

// Serves one connection over a socketpair, with `n`-byte big_response bodies and the given send
// timeout; `client` plays the client on its end. Returns that end once the server is done.
template <class F>
Stream serve_big(std::size_t n, std::chrono::milliseconds send_timeout, F client) {
  http::ServerOptions o;
  o.send_timeout = send_timeout;
  auto [a, b] = weave_test::raw_socketpair();
  Stream server_end(a), client_end(b);
  auto t = weave::spawn([&] {
    http::serve_connection(
        server_end, [n](const http::Request& req) { return big_response(req, n); }, o);
  });
  client(client_end);
  t.join();
  t.get();
  return client_end;
}

TEST(HttpServer, ClientThatStopsReadingIsDroppedAtTheSendTimeout) {
  for (const char* target : {"/memory", "/stream"}) {
    SCOPED_TRACE(target);
    run_http([&] {
      constexpr std::size_t kBody = 8 * 1024 * 1024;
      // The client reads nothing: the server gives up on it rather than wait forever.
      Stream c = serve_big(kBody, 50ms, [&](Stream& c) {
        c.write("GET " + std::string(target) + " HTTP/1.1\r\n\r\n");
      });
      std::string got;
      try {
        got = c.read_to_eof();
      } catch (const std::system_error&) {
        // ECONNRESET: the server dropped the connection with bytes unsent.
      }
      EXPECT_LT(got.size(), kBody);
    });
  }
}

TEST(HttpServer, SlowButSteadyReaderGetsTheWholeResponse) {
  // The send timeout bounds a stall, not the response: this one takes longer than it in all.
  for (const char* target : {"/memory", "/stream"}) {
    SCOPED_TRACE(target);
    run_http([&] {
      constexpr std::size_t kBody = 1024 * 1024;
      auto start = std::chrono::steady_clock::now();
      std::string all;
      serve_big(kBody, 200ms, [&](Stream& c) {
        c.write("GET " + std::string(target) + " HTTP/1.1\r\nConnection: close\r\n\r\n");
        for (;;) {
          // At most 16 KiB a read (the stream's default read buffer): 64 reads or more, so
          // the whole takes over 320 ms.
          std::string piece = c.read(64 * 1024);
          if (piece.empty()) break;
          all += piece;
          weave::this_fiber::sleep_for(5ms);
        }
      });
      EXPECT_GT(std::chrono::steady_clock::now() - start, 200ms);
      auto head_end = all.find("\r\n\r\n");
      ASSERT_NE(head_end, std::string::npos);
      std::string body = all.substr(head_end + 4);
      if (std::string(target) == "/stream") {
        // Chunked: count the payload bytes only.
        std::size_t payload = 0, at = 0;
        while (at < body.size()) {
          std::size_t line_end = body.find("\r\n", at);
          ASSERT_NE(line_end, std::string::npos);
          std::size_t size = std::stoul(body.substr(at, line_end - at), nullptr, 16);
          payload += size;
          at = line_end + 2 + size + 2;
          if (size == 0) break;
        }
        EXPECT_EQ(payload, kBody);
      } else {
        EXPECT_EQ(body.size(), kBody);
      }
    });
  }
}

TEST(HttpServer, MaxConnectionsGives503) {
  run_http([] {
    http::ServerOptions o;
    o.max_connections = 1;
    auto server = http::serve(echo, "127.0.0.1", 0, o);
    Stream a = connect(server);
    a.write("GET / HTTP/1.1\r\n\r\n");
    EXPECT_EQ(read_raw_response(a).status, 200);
    Stream b = connect(server);
    b.write("GET / HTTP/1.1\r\n\r\n");
    EXPECT_EQ(read_raw_response(b).status, 503);
    a.close();
    weave::this_fiber::sleep_for(5ms);
    Stream d = connect(server);
    d.write("GET / HTTP/1.1\r\n\r\n");
    EXPECT_EQ(read_raw_response(d).status, 200);
    server.close();
  });
}

TEST(HttpServer, PeerVanishingMidBodyDoesNotHurtTheServer) {
  run_http([] {
    auto server = http::serve(echo, "127.0.0.1", 0);
    {
      Stream c = connect(server);
      c.write("POST / HTTP/1.1\r\nContent-Length: 100\r\n\r\nonly a part");
      c.drain();
      c.abort();
    }
    Stream d = connect(server);
    d.write("GET /after HTTP/1.1\r\n\r\n");
    EXPECT_EQ(read_raw_response(d).body, "GET /after |");
    server.close();
  });
}

TEST(HttpServer, ServeConnectionOnASocketpair) {
  run_http([] {
    auto [a, b] = weave_test::raw_socketpair();
    Stream server_end(a), client_end(b);
    auto t = weave::spawn([&] { http::serve_connection(server_end, echo); });
    client_end.write("PUT /p HTTP/1.1\r\nContent-Length: 2\r\n\r\nok");
    EXPECT_EQ(read_raw_response(client_end).body, "PUT /p |ok");
    client_end.shutdown_write();
    t.join();  // returns at the end of the stream
    t.get();
  });
}

TEST(HttpServer, CancelledConnectionIsNotAnswered) {
  run_http([] {
    auto server = http::serve(
        [](const http::Request&) {
          weave::this_fiber::sleep_for(10s);
          return http::Response(200);
        },
        "127.0.0.1", 0);
    Stream c = connect(server);
    c.write("GET / HTTP/1.1\r\n\r\n");
    weave::this_fiber::sleep_for(5ms);
    server.close();
    server.close_clients();
    EXPECT_EQ(c.read_to_eof(), "");
    server.wait_closed();
  });
}

TEST(HttpServer, EmptyHandlerIsRefused) {
  EXPECT_THROW(http::serve(http::Handler{}, "127.0.0.1", 0), std::invalid_argument);
}

}  // namespace
