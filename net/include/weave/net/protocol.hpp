#pragma once
// The callback-style Protocol API (asyncio's transports and protocols): a Protocol's methods
// are called by its Transport as bytes arrive, on the same loop as fibers, and a connection can
// be handed to a fiber as a Stream at any point.

#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "weave/detail/intrusive_list.hpp"
#include "weave/detail/source_location.hpp"
#include "weave/io.hpp"
#include "weave/loop.hpp"
#include "weave/net/address.hpp"
#include "weave/net/socket.hpp"
#include "weave/net/stream.hpp"
#include "weave/task.hpp"

namespace weave::net {

class Transport;

namespace detail {
struct ProtocolServerState;
struct TransportAccess;
}  // namespace detail

/// What a connection's owner implements to be told about it (asyncio.Protocol): derive from it
/// and override what you need. Every method runs on the loop as a callback, never inside a
/// fiber, so it must not suspend; to run sequential code on the connection, hand it to a fiber
/// (Transport::hand_to_fiber()).
///
/// The order is fixed: connection_made() once; then data_received() any number of times;
/// then, if the peer closed its side, eof_received() at most once; finally connection_lost()
/// exactly once (unless the connection was handed to a fiber, which ends the protocol's part
/// without it). pause_writing() and resume_writing() alternate, starting with pause, between
/// connection_made() and connection_lost().
///
/// An exception thrown by a method (other than connection_lost()) is a fatal error of the
/// connection: it is reported to the loop's exception handler, the transport is aborted, and
/// connection_lost() receives the exception.
///
/// @par Example
/// @code
/// struct Echo : weave::net::Protocol {
///   weave::net::Transport* t = nullptr;
///   void connection_made(weave::net::Transport& transport) override { t = &transport; }
///   void data_received(std::string_view data) override { t->write(data); }
/// };
/// auto server = weave::net::create_server([] { return std::make_unique<Echo>(); },
///                                         "127.0.0.1", 8080);
/// @endcode
class Protocol {
 public:
  virtual ~Protocol() = default;
  /// The connection is up. `transport` stays valid until connection_lost() has returned (or
  /// the connection was handed to a fiber); keep a pointer to it.
  virtual void connection_made(Transport& transport) { (void)transport; }
  /// Bytes arrived. `data` is only valid during the call (it points into a buffer the loop
  /// reuses for every connection): copy what must be kept. Never empty.
  virtual void data_received(std::string_view data) { (void)data; }
  /// The peer will send no more (it half-closed or closed). Return true to keep the transport
  /// open for writing (the protocol then closes it itself), false to close it (the default).
  virtual bool eof_received() { return false; }
  /// The connection is closed: `error` is null for a normal close, abort() or a hand-off
  /// failure, otherwise the I/O error (std::system_error, ECONNRESET for a reset) or the
  /// exception a protocol method threw. Called exactly once; the transport and this protocol
  /// are destroyed after it returns, unless a TransportPtr still holds them.
  virtual void connection_lost(std::exception_ptr error) { (void)error; }
  /// The transport's write buffer went above its high-water mark: stop producing until
  /// resume_writing() (asyncio's flow control).
  virtual void pause_writing() {}
  /// The write buffer drained to its low-water mark.
  virtual void resume_writing() {}
};

/// Makes a fresh protocol for each connection.
using ProtocolFactory = std::function<std::unique_ptr<Protocol>()>;

/// A shared handle to a transport, for code outside the protocol's callbacks (a fiber, a
/// timer). A transport whose connection is gone stays a valid object while handles remain: its
/// calls are then no-ops and is_closing() is true.
using TransportPtr = std::shared_ptr<Transport>;

/// A stream socket connection (TCP or Unix) driven by the loop's reactor in callback mode, with
/// a Protocol attached (asyncio's socket transport).
///
/// Reads: when the socket is readable, one recv() into a buffer shared by every transport of
/// the thread, handed to Protocol::data_received() — a connection costs no read buffer while
/// it is idle, and a read allocates nothing. Writes: write() sends at once and buffers only
/// what the kernel did not take; the rest is sent as the socket becomes writable. The write
/// buffer has water marks: above the high one the protocol's pause_writing() is called, at or
/// below the low one resume_writing(). Sends use MSG_NOSIGNAL: a vanished peer is an error
/// passed to connection_lost(), never SIGPIPE.
///
/// Transports are created by create_server() and create_connection(); the protocol receives
/// the transport in connection_made().
///
/// @par Thread safety
/// Loop-affine: use it on its loop's thread only (post with call_soon_threadsafe otherwise).
class Transport : public std::enable_shared_from_this<Transport> {
 public:
  Transport(const Transport&) = delete;
  Transport& operator=(const Transport&) = delete;
  ~Transport();

  /// Sends `data`, or queues what the kernel does not take at once. Never blocks, never
  /// suspends.
  /// @par Errors
  /// Once the connection is lost (or aborted, or handed off), data is dropped silently: the
  /// protocol learns of the loss through connection_lost(), which may already be queued. A
  /// send error is not thrown: it ends the connection (connection_lost() gets it).
  /// std::logic_error after write_eof().
  void write(std::string_view data);
  /// Closes the write side (shutdown(SHUT_WR)) once the buffered bytes are sent: the peer sees
  /// end-of-file and can still send. A no-op if the transport is closing.
  void write_eof();
  /// Whether write_eof() is possible (always true for stream sockets).
  bool can_write_eof() const noexcept { return true; }
  /// Stops reading and closes the connection once the buffered bytes are sent; then
  /// connection_lost(nullptr) is called (on a later turn). Idempotent.
  void close();
  /// Closes the connection at once, dropping the write buffer; connection_lost(nullptr) is
  /// called on a later turn. Idempotent.
  void abort();
  /// True once close() or abort() was called, the connection was lost, or it was handed off.
  bool is_closing() const noexcept { return closing_; }

  /// Stops calling data_received() until resume_reading() (the kernel's buffers then fill and
  /// TCP slows the peer down). A no-op if reading is already paused or the transport is
  /// closing.
  void pause_reading();
  /// Resumes data_received() calls. A no-op unless paused.
  void resume_reading();
  /// True while the transport reads (not paused, not closing, no EOF yet).
  bool is_reading() const noexcept { return reading_; }

  /// Sets the write buffer's water marks. `low` defaults to high / 4; `high` must be at least
  /// `low`. The protocol may be paused or resumed at once.
  /// @throws std::invalid_argument if low > high.
  void set_write_buffer_limits(std::size_t high, std::size_t low);
  void set_write_buffer_limits(std::size_t high) { set_write_buffer_limits(high, high / 4); }
  /// The water marks (low, high).
  std::pair<std::size_t, std::size_t> get_write_buffer_limits() const noexcept {
    return {low_water_, high_water_};
  }
  /// Bytes queued and not yet taken by the kernel.
  std::size_t get_write_buffer_size() const noexcept { return wbuf_.size() - wpos_; }

  /// The socket's own address and its peer's (asyncio's get_extra_info("sockname") /
  /// ("peername")), kept from when the connection was made.
  const SocketAddress& sockname() const noexcept { return sockname_; }
  const SocketAddress& peername() const noexcept { return peername_; }
  /// The socket's fd, or -1 once closed or handed off. For setsockopt() and the like; reading
  /// or writing it directly would bypass the transport.
  int fd() const noexcept { return fd_; }
  Loop& loop() const noexcept { return *loop_; }

  /// The attached protocol.
  Protocol& protocol() const noexcept { return *protocol_; }
  /// The attached protocol as its own type (the caller knows it).
  template <class P>
  P& protocol_as() const noexcept {
    return static_cast<P&>(*protocol_);
  }
  /// Replaces the protocol; the next callback goes to the new one (asyncio's set_protocol).
  /// Use it to switch protocols on a live connection (after a handshake, for example). The
  /// old protocol is destroyed on a later turn, so it may replace itself from its own method.
  /// The new one gets no connection_made(): it is handed a live transport.
  /// @throws std::invalid_argument for a null protocol.
  void set_protocol(std::unique_ptr<Protocol> protocol);

  /// Ends the transport's part and returns the connection as a Stream for fiber code: the
  /// Stream reads `unread` first (bytes the protocol received but did not consume), then what
  /// the socket brings; bytes still in the transport's write buffer are sent first, in order.
  /// The protocol receives no further call, connection_lost() included, and is destroyed
  /// after the running callback returns. Nothing is lost: the transport never reads ahead of
  /// what it handed to data_received().
  ///
  /// @par Errors
  /// std::logic_error if the transport is closing (closed, lost, or handed off already);
  /// std::system_error if the Stream cannot be made (the connection is then aborted).
  Stream detach(std::string_view unread = {}, StreamOptions options = {});

  /// detach() and run `fn(Stream&)` in a new fiber (which owns the stream), returning its
  /// task. The usual way for a protocol callback to hand its connection to sequential code.
  ///
  /// @par Example
  /// @code
  /// void data_received(std::string_view data) override {
  ///   if (data.starts_with("UPGRADE\n"))
  ///     transport->hand_to_fiber([](weave::net::Stream& s) { serve_sequentially(s); },
  ///                              data.substr(8));
  /// }
  /// @endcode
  template <class F>
  auto hand_to_fiber(F fn, std::string_view unread = {}, StreamOptions options = {}) {
    Loop& l = *loop_;
    return l.spawn(
        [f = std::move(fn)](Stream s) mutable {
          if constexpr (std::is_invocable_v<F&, Stream&>)
            return f(s);
          else
            return f(std::move(s));
        },
        detach(unread, options));
  }

 private:
  friend struct detail::TransportAccess;
  friend struct detail::ProtocolServerState;
  struct Token {};

 public:
  // Made by create_server() and create_connection() only (Token is private).
  Transport(Token, Loop& loop, UniqueFd fd, std::unique_ptr<Protocol> protocol);

 private:
  void start();
  void on_readable();
  void on_writable();
  void arm_writer();
  bool flush();  // false: a fatal error ended the connection
  void fatal(std::exception_ptr error, const char* what);
  void finish(std::exception_ptr error);
  void maybe_pause_protocol();
  void maybe_resume_protocol();
  void call_protocol(void (*fn)(Transport&), const char* what);

  Loop* loop_;
  IoWatch watch_;
  int fd_ = -1;  // watch_.fd(), kept here: the read and write paths use it on every call
  std::unique_ptr<Protocol> protocol_;
  std::shared_ptr<Transport> self_;  // the connection's own reference, until connection_lost
  detail::ProtocolServerState* server_ = nullptr;
  struct ServerNode : weave::detail::ListNode {
    Transport* owner = nullptr;
  };
  ServerNode server_node_;  // in the server's list of connections
  SocketAddress sockname_;
  SocketAddress peername_;
  std::string wbuf_;  // queued bytes are wbuf_[wpos_, size)
  std::size_t wpos_ = 0;
  std::size_t high_water_ = 64 * 1024;
  std::size_t low_water_ = 16 * 1024;
  bool reading_ = false;
  bool read_paused_ = false;
  bool eof_received_ = false;
  bool closing_ = false;
  bool lost_ = false;  // finish() ran: the fd is closed
  bool eof_requested_ = false;
  bool eof_sent_ = false;
  bool writer_armed_ = false;
  bool protocol_paused_ = false;
};

/// Options of create_server().
struct ProtocolServerOptions {
  ListenOptions listen{};
  /// The transports' write buffer water marks.
  std::size_t high_water = 64 * 1024;
  std::size_t low_water = 16 * 1024;
  /// TCP_NODELAY on accepted TCP connections (asyncio sets it too).
  bool nodelay = true;
  /// When accept() fails for lack of fds (EMFILE, ENFILE, ENOBUFS, ENOMEM), the server stops
  /// accepting for this long, doubling up to max_accept_backoff while it keeps failing, and
  /// starts again at once when one of its connections closes. The first failure of a run is
  /// reported to the loop's exception handler.
  std::chrono::milliseconds accept_backoff{10};
  std::chrono::milliseconds max_accept_backoff{1000};
};

/// A listening server whose connections are driven by protocols (asyncio's Server from
/// loop.create_server). Closing the server stops accepting; its connections go on until they
/// end, or until close_clients()/abort_clients().
///
/// @par Thread safety
/// Loop-affine. Destroying the handle closes the server (its connections go on).
class ProtocolServer {
 public:
  ProtocolServer() noexcept = default;
  ProtocolServer(ProtocolServer&& other) noexcept : state_(std::exchange(other.state_, nullptr)) {}
  ProtocolServer& operator=(ProtocolServer&& other) noexcept;
  ProtocolServer(const ProtocolServer&) = delete;
  ProtocolServer& operator=(const ProtocolServer&) = delete;
  ~ProtocolServer();

  bool valid() const noexcept { return state_ != nullptr; }
  /// The port of the first listening address (the one the kernel chose for port 0).
  std::uint16_t port() const;
  /// The addresses listened on.
  std::vector<SocketAddress> addresses() const;
  /// True until close().
  bool is_serving() const noexcept;
  /// Connections alive now, and accepted since the start.
  std::size_t connection_count() const noexcept;
  std::size_t accepted_count() const noexcept;

  /// Suspends the calling fiber until the server is closed; a cancelled serve_forever() closes
  /// the server (asyncio's).
  /// @par Cancellation
  /// A checkpoint; the server is closed before Cancelled propagates.
  void serve_forever(SourceLocation where = SourceLocation::current());
  /// Stops listening (the sockets are closed at once). Idempotent; connections go on.
  void close() noexcept;
  /// close() the transport of every live connection (each finishes sending first).
  void close_clients() noexcept;
  /// abort() every live connection.
  void abort_clients() noexcept;
  /// Suspends the calling fiber until the server is closed and every connection it accepted is
  /// gone (their connection_lost() ran), as asyncio 3.12's Server.wait_closed().
  /// @par Cancellation
  /// A checkpoint; nothing changes for the server.
  void wait_closed(SourceLocation where = SourceLocation::current());

 private:
  friend ProtocolServer create_server(ProtocolFactory, const std::vector<SocketAddress>&,
                                      ProtocolServerOptions, Loop&);
  explicit ProtocolServer(detail::ProtocolServerState* s) noexcept : state_(s) {}
  detail::ProtocolServerState* state_ = nullptr;
};

/// Listens on every address in `addresses` (non-blocking, close-on-exec, SO_REUSEADDR, a
/// backlog of options.listen.backlog) and, for each connection, makes a protocol with
/// `factory` and attaches it to a new transport; its connection_made() runs at once, in the
/// accept callback. Never suspends.
///
/// @par Errors
/// std::system_error from socket/bind/listen (EADDRINUSE, EACCES, EMFILE), with the address.
/// A factory that throws, or returns null, is reported to the loop's exception handler and
/// that connection is closed; the server goes on.
ProtocolServer create_server(ProtocolFactory factory, const std::vector<SocketAddress>& addresses,
                             ProtocolServerOptions options = {}, Loop& loop = Loop::current());
/// The same on `host` (a numeric address, or a name resolved with getaddrinfo, which needs a
/// fiber; "" listens on every interface, IPv4 and IPv6) and `port` (0 picks a free one, the
/// same for every address).
ProtocolServer create_server(ProtocolFactory factory, std::string_view host, std::uint16_t port,
                             ProtocolServerOptions options = {});

/// Connects to `address` from a fiber (suspending it while the connection is in progress),
/// then attaches a protocol made by `factory` to the new transport and calls its
/// connection_made() before returning (asyncio's loop.create_connection()).
///
/// @par Cancellation
/// A checkpoint while connecting; a cancelled connect closes the half-made socket and never
/// calls the factory.
/// @par Errors
/// std::system_error with the connect error (ECONNREFUSED, ...); std::logic_error outside a
/// fiber; what the factory throws (the socket is then closed). An exception from
/// connection_made() is handled like one from any protocol method: reported, the connection
/// aborted, connection_lost() called with it.
TransportPtr create_connection(ProtocolFactory factory, const SocketAddress& address,
                               SourceLocation where = SourceLocation::current());
/// The same to `host` (a numeric address or a name, resolved on the executor) and `port`;
/// the addresses are tried in order until one connects.
TransportPtr create_connection(ProtocolFactory factory, std::string_view host, std::uint16_t port,
                               SourceLocation where = SourceLocation::current());

}  // namespace weave::net
