#pragma once
// weave::net::http: an HTTP/1.1 client with a keep-alive connection pool, and an HTTP/1.1
// server with one fiber per connection. Messages are parsed and serialised with Boost.Beast
// inside the library; this header uses plain value types only, so its users do not compile
// Beast.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <initializer_list>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "weave/detail/source_location.hpp"
#include "weave/net/server.hpp"
#include "weave/net/stream.hpp"

namespace weave::net::http {

namespace detail {
struct ClientState;
}

// ---- Messages ------------------------------------------------------------------------------

/// The header fields of a message, in the order they were added: names compare
/// case-insensitively (RFC 9110), values are kept as given. A field may repeat (add()).
///
/// @par Example
/// @code
/// weave::net::http::Headers h;
/// h.set("Content-Type", "text/plain");
/// h.add("Set-Cookie", "a=1");
/// h.add("set-cookie", "b=2");
/// assert(h.get("content-type") == "text/plain");
/// assert(h.get_all("Set-Cookie").size() == 2);
/// @endcode
class Headers {
 public:
  using Field = std::pair<std::string, std::string>;
  using const_iterator = std::vector<Field>::const_iterator;

  Headers() = default;
  Headers(std::initializer_list<Field> fields);

  /// The value of the first field named `name`, or nullopt. The view is valid until the
  /// headers change.
  std::optional<std::string_view> get(std::string_view name) const noexcept;
  /// The value of the first field named `name`, or `fallback`.
  std::string_view get_or(std::string_view name, std::string_view fallback) const noexcept;
  /// The values of every field named `name`, in order.
  std::vector<std::string_view> get_all(std::string_view name) const;
  /// True if a field named `name` is present.
  bool contains(std::string_view name) const noexcept;
  /// Replaces every field named `name` by one with `value` (kept at the first one's place, or
  /// appended).
  /// @throws std::invalid_argument if the name is empty or not a token, or the value holds
  /// CR, LF or NUL (a header injection).
  void set(std::string_view name, std::string_view value);
  /// Appends a field (names may repeat). @throws std::invalid_argument as set().
  void add(std::string_view name, std::string_view value);
  /// Removes every field named `name`; returns how many were removed.
  std::size_t erase(std::string_view name) noexcept;
  void clear() noexcept { fields_.clear(); }

  std::size_t size() const noexcept { return fields_.size(); }
  bool empty() const noexcept { return fields_.empty(); }
  const_iterator begin() const noexcept { return fields_.begin(); }
  const_iterator end() const noexcept { return fields_.end(); }

 private:
  std::vector<Field> fields_;
};

/// Produces a response body piece by piece (a large file, say): each call fills the start of
/// `buffer` and returns how many bytes it wrote, 0 at the end. It runs in the connection's
/// fiber and may suspend. An exception from it aborts the connection (the status line is
/// already sent).
using BodySource = std::function<std::size_t(std::span<char> buffer)>;

/// An HTTP request.
///
/// On the server, `target` is the request target as received ("/path?query"; see path() and
/// query()). For Client::request(), `target` is the absolute URL ("http://host:port/path");
/// the client sends the path and a Host field.
struct Request {
  /// "GET", "POST", ... (case-sensitive, as HTTP says).
  std::string method = "GET";
  std::string target = "/";
  /// 11 for HTTP/1.1, 10 for HTTP/1.0.
  int version = 11;
  Headers headers;
  /// The whole body (the server has read it, chunked or not, before the handler runs).
  std::string body;

  /// The target up to '?' (still percent-encoded).
  std::string_view path() const noexcept;
  /// The target after '?', or "".
  std::string_view query() const noexcept;
  /// True if the connection stays open after this request: HTTP/1.1 without
  /// "Connection: close", or HTTP/1.0 with "Connection: keep-alive".
  bool keep_alive() const noexcept;
};

/// An HTTP response.
struct Response {
  int status = 200;
  /// The reason phrase; "" sends the standard one for the status.
  std::string reason;
  /// 11 for HTTP/1.1, 10 for HTTP/1.0 (set by the client from the status line; a server
  /// answers in the request's version whatever this says).
  int version = 11;
  Headers headers;
  std::string body;
  /// Server side only: when set, the body comes from here instead of `body`. With a
  /// Content-Length field in `headers` exactly that many bytes are sent (fewer is an error
  /// that aborts the connection); without one the body is sent chunked (to an HTTP/1.0
  /// client: delimited by closing the connection). Not called for HEAD or a 204/304.
  BodySource body_source;

  Response() = default;
  /// A response with `status`, `body` and, if `content_type` is not empty, a Content-Type.
  Response(int status, std::string body = {},
           std::string_view content_type = "text/plain; charset=utf-8");

  /// True for a 2xx status.
  bool ok() const noexcept { return status >= 200 && status < 300; }
};

/// The standard reason phrase of `status` ("Not Found"), or "Unknown".
std::string_view reason_phrase(int status) noexcept;

// ---- Errors ----------------------------------------------------------------------------------

/// Base of the HTTP errors (I/O errors are std::system_error, timeouts weave::Cancelled).
class HttpError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// The peer sent something that is not HTTP/1.x (a malformed status line, header or chunk),
/// or the connection ended in the middle of a response.
class ProtocolError : public HttpError {
 public:
  using HttpError::HttpError;
};

/// A response's header or body was larger than ClientOptions allows.
class LimitError : public HttpError {
 public:
  using HttpError::HttpError;
};

/// More redirects than ClientOptions::max_redirects in a row.
class TooManyRedirects : public HttpError {
 public:
  using HttpError::HttpError;
};

// ---- URLs ------------------------------------------------------------------------------------

/// The parts of an `http://host[:port][/path][?query]` URL.
struct Url {
  /// The host as written (a name, an IPv4 address, or an IPv6 address without brackets).
  std::string host;
  std::uint16_t port = 80;
  /// The path and query ("/" when the URL has none); a fragment is dropped.
  std::string target = "/";

  /// Parses an absolute http URL.
  /// @throws std::invalid_argument for another scheme ("https" included: TLS is not
  /// supported), user info, an empty host, a bad port, spaces or control characters.
  static Url parse(std::string_view url);
  /// The Host field value: the host (in brackets if IPv6), with ":port" unless it is 80.
  std::string authority() const;
  /// "http://" + authority() + target.
  std::string str() const;
};

// ---- Client ----------------------------------------------------------------------------------

/// Options of a Client.
struct ClientOptions {
  /// Idle keep-alive connections kept per host:port; more are closed when returned.
  std::size_t max_idle_per_host = 8;
  /// An idle connection older than this is closed instead of reused.
  std::chrono::milliseconds idle_timeout{30'000};
  /// Redirects (301, 302, 303, 307, 308 with a Location) followed per request; 0 returns the
  /// 3xx response as it is. A 303, and a 301/302 after a POST, continue as a GET without
  /// body.
  int max_redirects = 0;
  /// Largest response header block (status line and fields) accepted.
  std::size_t max_header_bytes = 64 * 1024;
  /// Largest response body accepted (after chunked decoding).
  std::size_t max_body_bytes = 64 * 1024 * 1024;
  /// The User-Agent field sent unless the request has one ("" sends none).
  std::string user_agent = "weave-http";
  /// Options of the connections' Streams.
  StreamOptions stream{};
};

/// An HTTP/1.1 client with a pool of keep-alive connections per host:port.
///
/// A request takes an idle connection to its host:port from the pool (or opens one), sends
/// the request with a Content-Length body, reads the whole response (Content-Length,
/// chunked, or up to the end of the connection) and, if both sides allow keep-alive, returns
/// the connection to the pool. Several fibers may use one Client at once: each request has a
/// connection of its own.
///
/// @par Example
/// @code
/// weave::net::http::Client client;
/// auto r = client.get("http://127.0.0.1:8080/index.html");
/// if (r.ok()) std::cout << r.body;
/// auto p = weave::fail_after(5s, [&] {
///   return client.post("http://127.0.0.1:8080/api", R"({"x":1})", "application/json");
/// });
/// @endcode
///
/// @par Cancellation
/// Every request is a checkpoint and may be cancelled anywhere (timeouts come from cancel
/// scopes: `weave::fail_after(2s, [&] { return client.get(url); })`). A cancelled request's
/// connection is closed, never returned to the pool half-read.
///
/// @par Errors
/// std::invalid_argument for a bad URL; std::system_error for I/O (ECONNREFUSED, a resolver
/// error, ECONNRESET); ProtocolError for a malformed or truncated response; LimitError for a
/// header or body over the limits; TooManyRedirects. A status of 4xx or 5xx is not an error:
/// it is the response. A pooled connection that the server had closed while idle is retried
/// once on a fresh connection when no byte of the response had arrived and the method is
/// idempotent (GET, HEAD, PUT, DELETE, OPTIONS, TRACE).
///
/// @par Thread safety
/// Loop-affine: use a Client on one loop's thread (its pooled connections belong to the
/// loop of the first request).
class Client {
 public:
  explicit Client(ClientOptions options = {});
  Client(Client&& other) noexcept;
  Client& operator=(Client&& other) noexcept;
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;
  /// Closes the idle connections.
  ~Client();

  /// GET `url`.
  Response get(std::string_view url, SourceLocation where = SourceLocation::current());
  /// POST `body` to `url` with the given Content-Type.
  Response post(std::string_view url, std::string body,
                std::string_view content_type = "application/octet-stream",
                SourceLocation where = SourceLocation::current());
  /// Sends `request` (its target is the absolute URL; see Request). The client adds Host,
  /// Content-Length (when there is a body or the method is POST/PUT/PATCH) and User-Agent
  /// unless present; a "Connection: close" field is honoured (the connection is not pooled).
  Response request(Request request, SourceLocation where = SourceLocation::current());

  /// Closes every idle connection. Requests under way are not affected.
  void close_idle() noexcept;
  /// Idle connections in the pool (expired ones are dropped first).
  std::size_t idle_count() const noexcept;
  /// Connections opened since the Client was made (a measure of reuse).
  std::size_t connections_opened() const noexcept;
  const ClientOptions& options() const noexcept;

 private:
  detail::ClientState* state_ = nullptr;
};

/// GET `url` with a one-off Client (no connection is kept).
Response get(std::string_view url, ClientOptions options = {},
             SourceLocation where = SourceLocation::current());

// ---- Server ----------------------------------------------------------------------------------

/// A request handler: called in the connection's fiber, once per request, in order. It may
/// suspend (read a database, call another service). See serve() for what an exception does.
using Handler = std::function<Response(const Request&)>;

/// Limits and behaviour of an HTTP server.
struct ServerOptions {
  /// Largest request header block (request line and fields); larger gets 431 and the
  /// connection is closed.
  std::size_t max_header_bytes = 16 * 1024;
  /// Largest request body (after chunked decoding); larger gets 413 and the connection is
  /// closed (a Content-Length over the limit is refused before any body byte is read, also
  /// after "Expect: 100-continue").
  std::size_t max_body_bytes = 1024 * 1024;
  /// The whole header of a request must arrive within this time, counted from the
  /// connection's start for the first request and from the first byte for later ones: a
  /// client trickling bytes (slowloris) is dropped (408 and close) while others are served.
  std::chrono::milliseconds header_timeout{10'000};
  /// Time for the whole body once the header is in (408 and close).
  std::chrono::milliseconds body_timeout{60'000};
  /// How long a keep-alive connection may wait for its next request's first byte before it is
  /// closed (quietly).
  std::chrono::milliseconds idle_timeout{60'000};
  /// A response may take as long as it needs while the client keeps reading, but a client
  /// that takes no byte of it for this long is dropped (the connection is reset; the unsent
  /// rest of the response is freed).
  std::chrono::milliseconds send_timeout{60'000};
  /// Connections served at once; one more gets 503 and is closed at once. 0: no limit.
  std::size_t max_connections = 0;
  /// Value of the Server field added to every response ("" adds none).
  std::string server_name = "weave";
  /// Add a Date field to every response (unless the handler set one).
  bool date = true;
  /// Called with an exception that escaped the handler (the client got a 500). Unset: the
  /// loop's exception handler is told.
  std::function<void(std::exception_ptr)> on_handler_error{};
  /// Options of the listening sockets and accepted streams.
  net::ServerOptions net{};
};

/// A running HTTP server: a net::Server whose connections run serve_connection().
///
/// @par Thread safety
/// Loop-affine, like net::Server.
class Server {
 public:
  Server() noexcept = default;
  Server(Server&&) noexcept = default;
  Server& operator=(Server&&) noexcept = default;
  /// close(); running connections go on.
  ~Server() = default;

  bool valid() const noexcept { return net_.valid(); }
  /// The listening port (the kernel's choice when port 0 was asked).
  std::uint16_t port() const { return net_.port(); }
  std::vector<SocketAddress> addresses() const { return net_.addresses(); }
  /// Connections being served now.
  std::size_t connection_count() const noexcept { return net_.connection_count(); }
  /// Suspends until close() (see net::Server::serve_forever).
  void serve_forever(SourceLocation where = SourceLocation::current()) {
    net_.serve_forever(where);
  }
  /// Stops accepting; running connections go on (see close_clients()).
  void close() noexcept { net_.close(); }
  /// Cancels every connection's fiber (each is closed).
  void close_clients() noexcept { net_.close_clients(); }
  /// Suspends until closed and every connection has finished.
  void wait_closed(SourceLocation where = SourceLocation::current()) { net_.wait_closed(where); }
  /// The underlying net::Server.
  net::Server& net() noexcept { return net_; }

 private:
  friend Server serve(Handler, std::string_view, std::uint16_t, ServerOptions);
  explicit Server(net::Server s) noexcept : net_(std::move(s)) {}
  net::Server net_;
};

/// Listens on `host`:`port` (as net::start_server) and serves HTTP/1.1 with `handler`, one
/// fiber per connection running serve_connection(). Does not suspend.
///
/// @par Example
/// @code
/// auto server = weave::net::http::serve([](const weave::net::http::Request& req) {
///   if (req.path() != "/") return weave::net::http::Response(404, "not found\n");
///   return weave::net::http::Response(200, "hello\n");
/// }, "127.0.0.1", 8080);
/// server.serve_forever();
/// @endcode
///
/// @par Errors
/// std::system_error if the address cannot be bound. See serve_connection() for what happens
/// to bad requests and handler exceptions.
Server serve(Handler handler, std::string_view host, std::uint16_t port,
             ServerOptions options = {});

/// Serves HTTP/1.1 requests on one connection until it closes: reads a request (within the
/// limits of `options`), calls `handler`, writes the response, and goes on while keep-alive
/// holds. Pipelined requests are answered in order; bytes of the next request read with the
/// previous one are kept for it. serve() runs this per connection; call it yourself to serve
/// HTTP on a stream you have (a Unix socket, a socketpair).
///
/// Keep-alive: HTTP/1.1 keeps the connection unless either side says "Connection: close";
/// HTTP/1.0 closes unless the request says "Connection: keep-alive". HEAD gets the header of
/// the response without its body. "Expect: 100-continue" gets "100 Continue" just before the
/// body is read (or the 413 if the declared length is over the limit).
///
/// Failures: a malformed request gets 400, an oversized header 431, an oversized body 413, a
/// too slow header or body 408, and in each case the connection is closed. A handler that
/// throws gets the client a 500 and the connection goes on (the request had been read
/// whole, so the next one is intact); the exception goes to `options.on_handler_error`. A
/// weave::Cancelled from the handler is not caught. Returns when the peer closes, at a
/// keep-alive idle timeout, or after a response that closes the connection.
///
/// @par Cancellation
/// A checkpoint everywhere it reads or writes; a cancelled connection is not answered.
/// @par Errors
/// std::system_error when the connection fails (ECONNRESET, EPIPE).
void serve_connection(Stream& stream, const Handler& handler, const ServerOptions& options = {});

}  // namespace weave::net::http
