#pragma once
// weave::net::Stream: a buffered byte stream over a non-blocking fd, read and written from
// fibers (asyncio's StreamReader and StreamWriter in one object), and open_connection().

#include <cstddef>
#include <cstdint>
#include <iterator>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>

#include "weave/detail/source_location.hpp"
#include "weave/net/address.hpp"
#include "weave/net/socket.hpp"

namespace weave {
class Loop;
}

namespace weave::net {

namespace detail {
struct StreamState;
struct StreamAccess;
}  // namespace detail

/// Tuning of a Stream.
struct StreamOptions {
  /// The most bytes read_line() and read_until() buffer while looking for the separator
  /// (asyncio's `limit`); beyond it they throw LimitOverrunError.
  std::size_t limit = 64 * 1024;
  /// The read buffer's initial size, and so the most one read system call asks for. It is
  /// allocated on the first read and grows only when read_until() needs more.
  std::size_t read_buffer = 16 * 1024;
  /// drain() suspends while more than `high_water` bytes wait to be sent, until at most
  /// `low_water` do (asyncio's write buffer limits; flow control).
  std::size_t high_water = 64 * 1024;
  std::size_t low_water = 16 * 1024;
  /// TCP_NODELAY on TCP sockets opened or accepted by the net layer (asyncio's default too):
  /// small request/response messages are not held back by Nagle's algorithm.
  bool nodelay = true;
};

/// Thrown by read_exactly() (and read_until()) when the stream ends first. partial() holds
/// what was read: those bytes are no longer in the stream.
class IncompleteReadError : public std::runtime_error {
 public:
  IncompleteReadError(std::string partial, std::size_t expected);
  /// The bytes read before the end of the stream.
  const std::string& partial() const noexcept { return partial_; }
  /// How many bytes were wanted (0 when read_until() was looking for a separator).
  std::size_t expected() const noexcept { return expected_; }

 private:
  std::string partial_;
  std::size_t expected_;
};

/// Thrown by read_line() and read_until() when the limit is reached without finding the
/// separator. Nothing is consumed: the buffered bytes stay in the stream, where read() or
/// read_exactly() can take them (for example to skip an overlong line piece by piece).
class LimitOverrunError : public std::runtime_error {
 public:
  LimitOverrunError(std::size_t consumed, std::size_t limit);
  /// How many buffered bytes were searched (at least the limit).
  std::size_t consumed() const noexcept { return consumed_; }
  std::size_t limit() const noexcept { return limit_; }

 private:
  std::size_t consumed_;
  std::size_t limit_;
};

class Stream;

/// The lines of a stream, for range-for (asyncio's `async for line in reader`). Each line is
/// given without its "\n" (and without a "\r" before it), like std::getline; the last line
/// need not end in "\n". Iteration ends at the end of the stream. Errors (LimitOverrunError,
/// std::system_error, weave::Cancelled) propagate from the loop's increment.
class StreamLines {
 public:
  class iterator {
   public:
    using iterator_category = std::input_iterator_tag;
    using value_type = std::string;
    using difference_type = std::ptrdiff_t;
    using pointer = const std::string*;
    using reference = const std::string&;

    iterator() = default;
    reference operator*() const noexcept { return line_; }
    pointer operator->() const noexcept { return &line_; }
    iterator& operator++();
    void operator++(int) { ++*this; }
    friend bool operator==(const iterator& it, std::default_sentinel_t) noexcept {
      return it.stream_ == nullptr;
    }

   private:
    friend class StreamLines;
    explicit iterator(Stream* s) : stream_(s) { ++*this; }
    Stream* stream_ = nullptr;
    std::string line_;
  };

  explicit StreamLines(Stream& s) noexcept : stream_(&s) {}
  /// Reads the first line (a suspension point).
  iterator begin() { return iterator(stream_); }
  std::default_sentinel_t end() const noexcept { return {}; }

 private:
  Stream* stream_;
};

/// A buffered, bidirectional byte stream over an owned non-blocking fd: a TCP or Unix socket,
/// a pipe, a tty. A fiber that reads or writes it reads like blocking code; only that fiber
/// waits, the loop keeps running.
///
/// Reading: every read first takes what is buffered; when it needs more it makes one read
/// system call straight into the buffer, and waits on the loop's reactor only after EAGAIN.
/// Writing: write() sends at once when nothing is queued and queues only what the kernel did
/// not take; a helper fiber sends the queue as the socket becomes writable, and drain()
/// suspends while the queue is above the high-water mark (flow control).
///
/// @par Example
/// @code
/// auto s = weave::net::open_connection("example.org", 80);
/// s.write("GET / HTTP/1.0\r\nHost: example.org\r\n\r\n");
/// s.drain();
/// for (const std::string& line : s.lines()) std::cout << line << "\n";
/// @endcode
///
/// @par Cancellation
/// Every read, write, drain and connect is a checkpoint. A cancelled read consumes nothing: the
/// bytes that had arrived stay buffered for the next read (a cancelled read_exactly() or
/// read_line() leaves its partial data in the stream). A cancelled drain() leaves the queued
/// bytes queued; they are still sent. Timeouts come from cancel scopes:
/// `weave::fail_after(5s, [&] { return s.read_line(); })`.
///
/// @par Errors
/// std::system_error with the errno for I/O errors (ECONNRESET, EPIPE, ...); EINTR and EAGAIN
/// never reach the caller. std::system_error(EBADF) for a read or write on a closed stream (a
/// fiber waiting in one when another closes the stream gets it too). std::logic_error for
/// misuse: an empty (moved-from) stream, two fibers reading at once, writing after
/// shutdown_write(). Sends use MSG_NOSIGNAL (and, on pipes, SIGPIPE is blocked around the
/// write): a vanished peer is an EPIPE error, never a signal.
///
/// @par Thread safety
/// Loop-affine: use a stream on its loop's thread only.
class Stream {
 public:
  /// An empty stream (valid() is false).
  Stream() noexcept = default;
  /// Takes ownership of `fd` (a socket, pipe or other pollable fd; made non-blocking if it is
  /// not) and registers it with `loop`'s reactor. This is how an fd accepted or connected
  /// elsewhere (a Protocol transport, a subprocess pipe) becomes a Stream.
  /// @throws std::system_error if the fd cannot be polled (a regular file); the fd is closed.
  explicit Stream(int fd, StreamOptions options = {});
  Stream(UniqueFd fd, StreamOptions options = {});
  Stream(int fd, StreamOptions options, Loop& loop);
  Stream(Stream&& other) noexcept;
  Stream& operator=(Stream&& other) noexcept;
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  /// close(): queued bytes are still sent in the background before the fd closes.
  ~Stream();

  bool valid() const noexcept { return state_ != nullptr; }
  explicit operator bool() const noexcept { return valid(); }

  // ---- Reading ------------------------------------------------------------------------

  /// Up to `n` bytes: what is buffered, or else what one read brings; "" at the end of the
  /// stream (or for n == 0). Suspends only while nothing at all is available.
  std::string read(std::size_t n);
  /// The same into `out`, without allocating: returns the number of bytes copied, 0 at the
  /// end of the stream. When nothing is buffered and `out` is at least as large as the read
  /// buffer, the bytes are read straight into `out`.
  std::size_t read_some(std::span<char> out);
  /// Exactly `n` bytes. @throws IncompleteReadError (with the bytes read) if the stream ends
  /// first.
  std::string read_exactly(std::size_t n);
  /// Exactly out.size() bytes into `out`. @throws IncompleteReadError as above.
  void read_exactly(std::span<char> out);
  /// One line, with its "\n"; at the end of the stream, what is left (possibly without "\n"),
  /// then "". @throws LimitOverrunError if `limit` bytes arrive without a "\n" (nothing is
  /// consumed; asyncio's readline() would discard them, this does not).
  std::string read_line();
  /// Everything up to and including `separator`.
  /// @throws LimitOverrunError as read_line(); IncompleteReadError (with everything that was
  /// left) if the stream ends without the separator; std::invalid_argument for an empty
  /// separator.
  std::string read_until(std::string_view separator);
  /// Everything until the end of the stream (asyncio's read(-1)); no limit applies.
  std::string read_to_eof();
  /// The lines of the stream, for range-for; see StreamLines.
  StreamLines lines() noexcept { return StreamLines(*this); }

  /// True once the end of the stream was seen and every buffered byte was consumed.
  bool at_eof() const noexcept;
  /// The bytes read from the fd and not yet consumed.
  std::size_t buffered() const noexcept;
  /// A view of the buffered bytes (valid until the next read).
  std::string_view peek() const noexcept;

  // ---- Writing ------------------------------------------------------------------------

  /// Sends `data` or queues what the kernel does not take at once. Never suspends (queueing is
  /// unbounded: call drain() to respect the high-water mark).
  ///
  /// @par Cancellation
  /// A checkpoint (a pending cancellation is thrown before anything is sent).
  /// @par Errors
  /// std::system_error for a send error now or an earlier one of the background sender
  /// (EPIPE, ECONNRESET); std::logic_error after shutdown_write() or close().
  void write(std::string_view data);
  void write(const void* data, std::size_t n) {
    write(std::string_view(static_cast<const char*>(data), n));
  }
  /// Suspends while more than the high-water mark is queued, until at most the low-water
  /// mark is (asyncio's drain()). Returns at once when below it.
  /// @par Cancellation
  /// A checkpoint; the queued bytes stay queued and are still sent.
  /// @par Errors
  /// std::system_error if sending failed (the peer reset the connection, ...).
  void drain(SourceLocation where = SourceLocation::current());
  /// Bytes queued and not yet sent.
  std::size_t write_buffer_size() const noexcept;
  /// Changes the water marks (low <= high; low defaults to high / 4).
  void set_write_buffer_limits(std::size_t high, std::size_t low);
  void set_write_buffer_limits(std::size_t high) { set_write_buffer_limits(high, high / 4); }
  /// Half-close: once the queued bytes are sent, the peer sees the end of the stream
  /// (shutdown(SHUT_WR)); reading goes on. On a pipe this closes the fd. Idempotent.
  void shutdown_write();

  // ---- Closing and identity -------------------------------------------------------------

  /// Closes the stream: reads stop at once, and fibers waiting in a read or drain wake with
  /// EBADF; queued bytes are still sent in the background (by the helper fiber) before the fd
  /// closes, unless sending fails. Never suspends; idempotent.
  void close() noexcept;
  /// Closes at once and drops the queued bytes.
  void abort() noexcept;
  /// Suspends until the fd is closed (after close(): once the queued bytes are sent).
  /// @par Cancellation
  /// A checkpoint; the background send goes on.
  void wait_closed(SourceLocation where = SourceLocation::current());
  /// True once close() or abort() was called.
  bool is_closing() const noexcept;

  /// The fd (-1 once closed, or for an empty stream).
  int fd() const noexcept;
  /// This end's and the peer's address (sockets only). @throws std::system_error.
  SocketAddress local_address() const;
  SocketAddress peer_address() const;
  /// The options in force.
  const StreamOptions& options() const noexcept;

 private:
  friend struct detail::StreamAccess;
  detail::StreamState* live(const char* what) const;
  detail::StreamState* state_ = nullptr;
};

/// Connects to `host`:`port` over TCP and returns the stream. A name is resolved with
/// getaddrinfo() on the executor (a numeric address is not); the addresses are tried in the
/// resolver's order until one accepts.
///
/// @par Cancellation
/// A checkpoint (resolution and each connect); nothing is left open.
/// @par Errors
/// std::system_error: the resolver's error (gai_category), or the last connect error
/// (ECONNREFUSED, ...) with the address in the message; std::logic_error outside a fiber.
Stream open_connection(std::string_view host, std::uint16_t port, StreamOptions options = {},
                       SourceLocation where = SourceLocation::current());
/// Connects to `address` (TCP, or Unix for an AF_UNIX address).
Stream open_connection(const SocketAddress& address, StreamOptions options = {},
                       SourceLocation where = SourceLocation::current());

}  // namespace weave::net
