// http_server_api: the tour of weave::net::http from docs/http.md, as one program: a server
// with a few routes and a client on the same loop (the client's GETs and POSTs, keep-alive
// reuse, a request of one's own, redirects, a streamed body, timeouts, the server's limits,
// the errors). The tests run it and check its output, and http_server_docs_check.py checks
// that every code block of docs/http.md is a piece of this file (or of http_server.cpp).
//
// Usage: http_server_api (no arguments; it prints what each call returned and exits 0).

#include <chrono>
#include <cstdio>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <system_error>

#include "weave/cancel_scope.hpp"
#include "weave/errors.hpp"
#include "weave/net/http.hpp"
#include "weave/run.hpp"
#include "weave/this_fiber.hpp"

namespace http = weave::net::http;
using namespace std::chrono_literals;

namespace {

void show(const char* what, const http::Response& r) {
  std::printf("%-28s %d %s, %zu bytes: %s\n", what, r.status, r.reason.c_str(), r.body.size(),
              r.body.substr(0, r.body.find('\n')).c_str());
}

http::Response handle(const http::Request& req) {
  if (req.path() == "/hello") return http::Response(200, "hello\n");
  if (req.path() == "/echo" && req.method == "POST") {
    http::Response r(200, req.body, req.headers.get_or("Content-Type", "text/plain"));
    r.headers.set("X-Query", req.query());
    return r;
  }
  if (req.path() == "/slow") {
    weave::this_fiber::sleep_for(300ms);  // suspends this connection's fiber only
    return http::Response(200, "finally\n");
  }
  if (req.path() == "/old") {
    http::Response r(301, "moved\n");
    r.headers.set("Location", "/hello");
    return r;
  }
  if (req.path() == "/count") {
    // A body produced piece by piece: without a Content-Length it goes out chunked.
    http::Response r(200, {}, "text/plain");
    auto next = std::make_shared<int>(0);
    r.body_source = [next](std::span<char> buffer) -> std::size_t {
      if (*next == 3) return 0;  // the end
      std::string line = std::to_string((*next)++) + " ";
      return line.copy(buffer.data(), buffer.size());
    };
    return r;
  }
  return http::Response(404, "not found\n");
}

int tour() {
  http::ServerOptions options;
  options.max_header_bytes = 8 * 1024;  // a larger request header gets 431
  options.max_body_bytes = 64 * 1024;   // a larger body gets 413
  options.header_timeout = 5s;          // a header still incomplete after 5 s gets 408
  auto server = http::serve(handle, "127.0.0.1", 0, options);
  const std::string base = "http://127.0.0.1:" + std::to_string(server.port());

  // The client: GET, POST, and the pool.
  http::Client client;
  http::Response r = client.get(base + "/hello");
  show("GET /hello", r);
  r = client.post(base + "/echo?x=1", R"({"n":1})", "application/json");
  show("POST /echo?x=1", r);
  std::printf("  Content-Type %s, X-Query %s\n",
              std::string(r.headers.get_or("Content-Type", "-")).c_str(),
              std::string(r.headers.get_or("X-Query", "-")).c_str());
  std::printf("  connections opened: %zu, idle in the pool: %zu\n", client.connections_opened(),
              client.idle_count());

  // A request of one's own: any method, fields, a body. A 4xx is a response, not an error.
  http::Request req;
  req.method = "PUT";
  req.target = base + "/echo";  // the absolute URL
  req.headers.set("X-Trace", "42");
  req.body = "data";
  show("PUT /echo", client.request(std::move(req)));

  // Redirects are off by default: the 3xx comes back as it is.
  show("GET /old", client.get(base + "/old"));
  http::ClientOptions follow;
  follow.max_redirects = 5;
  http::Client browser(follow);
  show("GET /old, following", browser.get(base + "/old"));

  // A streamed (chunked) body is read whole.
  show("GET /count", client.get(base + "/count"));

  // Timeouts are cancel scopes around the call.
  try {
    weave::fail_after(100ms, [&] { return client.get(base + "/slow"); });
  } catch (const weave::TimeoutError&) {
    std::printf("GET /slow under fail_after(100ms): TimeoutError\n");
  }
  auto late = weave::move_on_after(5s, [&] { return client.get(base + "/slow"); });
  if (late) show("GET /slow under 5 s", *late);

  // The server's limits answer with a status and close the connection.
  http::Request big;
  big.target = base + "/hello";
  big.headers.set("X-Big", std::string(10'000, 'a'));
  show("GET with a 10 kB field", client.request(std::move(big)));
  show("POST of 100 kB", client.post(base + "/echo", std::string(100'000, 'b')));

  // Errors.
  try {
    client.get("http://127.0.0.1:1/");  // nobody listens on port 1
  } catch (const std::system_error& e) {
    std::printf("port 1: std::system_error: %s\n", e.code().message().c_str());
  }
  try {
    client.get("https://example.com/");
  } catch (const std::invalid_argument& e) {
    std::printf("https: std::invalid_argument: %s\n", e.what());
  }
  http::ClientOptions small;
  small.max_body_bytes = 4;
  try {
    http::Client(small).get(base + "/hello");
  } catch (const http::LimitError& e) {
    std::printf("max_body_bytes = 4: http::LimitError: %s\n", e.what());
  }

  std::printf("connections opened by the client: %zu\n", client.connections_opened());
  server.close();          // stop accepting
  server.close_clients();  // end the keep-alive connections
  server.wait_closed();
  return 0;
}

}  // namespace

int main() {
  try {
    return weave::run(tour);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "http_server_api: %s\n", e.what());
    return 1;
  }
}
