#pragma once
// weave::net::Server and start_server(): accept connections and run a fiber per connection.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "weave/detail/source_location.hpp"
#include "weave/net/address.hpp"
#include "weave/net/socket.hpp"
#include "weave/net/stream.hpp"

namespace weave::net {

namespace detail {
struct ServerState;
}

/// What a handler is given: the connection's stream (the server closes it when the handler
/// returns, unless the handler moved it away).
using ConnectionHandler = std::function<void(Stream&)>;

/// Options of start_server().
struct ServerOptions {
  /// Backlog, SO_REUSEADDR, SO_REUSEPORT, IPV6_V6ONLY of the listening sockets.
  ListenOptions listen{};
  /// Options of every accepted connection's Stream.
  StreamOptions stream{};
  /// Stack size of the handler fibers (0: the loop's default).
  std::size_t handler_stack_size = 0;
  /// Called (on the loop) with an exception that escaped a handler. Unset: the loop's
  /// exception handler is told, except for connection errors that only mean the peer went
  /// away (ECONNRESET, EPIPE, ETIMEDOUT, IncompleteReadError), which are dropped quietly.
  std::function<void(std::exception_ptr)> on_handler_error{};
  /// When accept() fails for lack of fds (EMFILE, ENFILE, ENOBUFS, ENOMEM), the server stops
  /// accepting until a connection of its own closes or this much time passes, doubling the
  /// pause up to `max_accept_backoff` while the shortage lasts, instead of spinning. The
  /// loop's exception handler is told once per shortage.
  std::chrono::milliseconds accept_backoff{10};
  std::chrono::milliseconds max_accept_backoff{1000};
};

/// A listening server (asyncio.Server): one acceptor fiber per listening socket, and one
/// handler fiber per accepted connection.
///
/// @par Example
/// @code
/// auto server = weave::net::start_server([](weave::net::Stream& s) {
///   for (const std::string& line : s.lines()) s.write(line + "\n");
/// }, "127.0.0.1", 0);
/// std::cout << "listening on " << server.port() << "\n";
/// server.serve_forever();
/// @endcode
///
/// @par Thread safety
/// Loop-affine. A Server handle may be dropped while the server runs: the destructor closes
/// it (stops accepting); running handlers go on.
class Server {
 public:
  Server() noexcept = default;
  Server(Server&& other) noexcept : state_(std::exchange(other.state_, nullptr)) {}
  Server& operator=(Server&& other) noexcept;
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;
  /// close(); handlers that are still running go on.
  ~Server();

  bool valid() const noexcept { return state_ != nullptr; }
  /// The port of the first listening socket (the one the kernel chose when port 0 was asked).
  std::uint16_t port() const;
  /// The addresses of every listening socket.
  std::vector<SocketAddress> addresses() const;
  /// True until close().
  bool is_serving() const noexcept;
  /// Handlers running now.
  std::size_t connection_count() const noexcept;
  /// Connections accepted since the start.
  std::size_t accepted_count() const noexcept;

  /// Suspends the calling fiber until close() is called (by another fiber, a signal handler,
  /// a callback). @par Cancellation A checkpoint; a cancelled serve_forever() closes the
  /// server (asyncio's behaviour), then throws weave::Cancelled.
  void serve_forever(SourceLocation where = SourceLocation::current());
  /// Stops accepting and closes the listening sockets (removing a Unix socket's file).
  /// Running handlers go on; see close_clients(). Idempotent, never suspends.
  void close() noexcept;
  /// Cancels every running handler (weave::Cancelled at its current suspension point; its
  /// stream is then closed). Does not stop accepting: call close() first for a shutdown.
  void close_clients() noexcept;
  /// Suspends until close() was called and every handler has finished.
  /// @par Cancellation A checkpoint.
  void wait_closed(SourceLocation where = SourceLocation::current());

 private:
  friend Server start_server(ConnectionHandler, const std::vector<SocketAddress>&, ServerOptions);
  explicit Server(detail::ServerState* s) noexcept : state_(s) {}
  detail::ServerState* state_ = nullptr;
};

/// Listens on every address in `addresses` and runs `handler(stream)` in a new fiber for
/// each connection. Does not suspend: it may be called before the loop runs.
/// @throws std::system_error if a socket cannot be bound (the others are closed again).
Server start_server(ConnectionHandler handler, const std::vector<SocketAddress>& addresses,
                    ServerOptions options = {});

/// Listens on `host`:`port` over TCP (asyncio.start_server). `host` may be a numeric address,
/// a name (resolved with getaddrinfo(), which needs a fiber or a loop that is not running),
/// or "" for every interface (IPv4 and IPv6). Port 0 lets the kernel choose: see port().
///
/// The handler may take `Stream&` (the server closes the stream after it returns) or `Stream`
/// by value (it owns the stream). An exception escaping it is reported as ServerOptions
/// describes; it never stops the server.
/// @throws std::system_error (EADDRINUSE, EACCES, a resolver error).
template <class F>
requires std::is_invocable_v<F&, Stream&> || std::is_invocable_v<F&, Stream&&> Server
start_server(F&& handler, std::string_view host, std::uint16_t port, ServerOptions options = {});

/// The addresses start_server() listens on for `host` and `port` (see there).
std::vector<SocketAddress> server_addresses(std::string_view host, std::uint16_t port);

template <class F>
requires std::is_invocable_v<F&, Stream&> || std::is_invocable_v<F&, Stream&&> Server
start_server(F&& handler, std::string_view host, std::uint16_t port, ServerOptions options) {
  ConnectionHandler h;
  if constexpr (std::is_invocable_v<F&, Stream&>)
    h = std::forward<F>(handler);
  else
    h = [f = std::forward<F>(handler)](Stream& s) mutable { f(std::move(s)); };
  return start_server(std::move(h), server_addresses(host, port), std::move(options));
}

}  // namespace weave::net
