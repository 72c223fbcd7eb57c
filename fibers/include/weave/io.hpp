#pragma once
// weave::IoWatch: an fd on the loop's epoll reactor, waited on by fibers or served by callbacks.

#include <cstdint>
#include <functional>

#include "weave/detail/source_location.hpp"
#include "weave/loop.hpp"

namespace weave {

namespace detail {
struct IoState;
}

/// A non-blocking file descriptor registered with a loop's reactor (the epoll set the loop
/// waits on when it is idle). It is the building block of sockets, pipes and streams: a fiber
/// tries its read or write, and on EAGAIN forgets the readiness and waits for the next.
///
/// Two ways to use it, not mixed on one watch:
/// - **Fibers** call wait_readable()/wait_writable(). The fd is registered edge-triggered once;
///   readiness that epoll reported is remembered until clear_readable()/clear_writable(), which
///   the caller does when the fd says EAGAIN. Several fibers may wait on one direction; all are
///   woken and each retries.
/// - **Callbacks** (asyncio's add_reader/add_writer): on_readable()/on_writable() run a callback
///   on the loop, as a ready-queue item, on every turn the fd is readable (writable), until it
///   is replaced by an empty function. While a callback is set, Loop::run() keeps running.
///
/// close() wakes every fiber waiting on the fd with std::system_error(EBADF), and only then
/// closes the fd, so a waiter never sees the fd number reused under it.
///
/// @par Example
/// @code
/// weave::IoWatch watch(fd);  // fd is O_NONBLOCK
/// for (;;) {
///   ssize_t n = ::read(fd, buf, sizeof buf);
///   if (n >= 0) return n;
///   if (errno != EAGAIN) throw std::system_error(errno, std::generic_category(), "read");
///   watch.clear_readable();
///   watch.wait_readable();
/// }
/// @endcode
///
/// @par Thread safety
/// Loop-affine: use it on its loop's thread only. It must not outlive its loop.
class IoWatch {
 public:
  /// An empty watch (valid() is false).
  IoWatch() noexcept = default;
  /// Registers `fd`, which must be non-blocking, with `loop`'s reactor. Does not take the fd:
  /// the destructor unregisters it and leaves it open; close() closes it.
  /// @throws std::system_error if epoll refuses the fd (a regular file, for example).
  explicit IoWatch(int fd, Loop& loop = Loop::current());
  IoWatch(IoWatch&& other) noexcept : state_(other.state_) { other.state_ = nullptr; }
  IoWatch& operator=(IoWatch&& other) noexcept;
  IoWatch(const IoWatch&) = delete;
  IoWatch& operator=(const IoWatch&) = delete;
  /// Unregisters the fd (without closing it). Fibers must not be waiting on it any more.
  ~IoWatch() { reset(); }

  bool valid() const noexcept { return state_ != nullptr; }
  /// The fd, or -1 once closed or released (or for an empty watch).
  int fd() const noexcept;
  /// True once close() was called.
  bool closed() const noexcept;

  /// Returns at once if readiness to read (or an error, or a hang-up) was reported since the
  /// last clear_readable(); otherwise suspends the calling fiber until it is.
  ///
  /// @par Cancellation
  /// A checkpoint when it has to wait; a cancelled wait consumes nothing.
  /// @par Errors
  /// std::system_error(EBADF) if the watch is closed, before or during the wait;
  /// std::logic_error outside a fiber, or on a watch in callback mode.
  void wait_readable(SourceLocation where = SourceLocation::current());
  /// The same for writing.
  void wait_writable(SourceLocation where = SourceLocation::current());
  /// Forgets the readiness to read: call it when the fd returned EAGAIN (or a short read
  /// emptied it), then wait. Once a hang-up or an error was reported, readiness to read stays:
  /// no further edge would come, and reads can no longer block.
  void clear_readable() noexcept;
  void clear_writable() noexcept;
  /// Whether readiness is remembered (fiber mode).
  bool readable() const noexcept;
  bool writable() const noexcept;

  /// Runs `callback` on the loop on every turn the fd is readable; an empty function stops it.
  /// Switches the watch to callback mode for good.
  /// @throws std::logic_error if fibers are waiting on the watch or it is closed.
  void on_readable(std::function<void()> callback);
  /// The same for writability (remove it when there is nothing left to write, or it runs on
  /// every turn).
  void on_writable(std::function<void()> callback);

  /// Wakes every waiting fiber with EBADF, drops the callbacks, unregisters the fd and closes
  /// it. Idempotent.
  void close() noexcept;
  /// Like close(), but hands the fd over open instead of closing it (-1 if already closed).
  int release() noexcept;

 private:
  void reset() noexcept;
  detail::IoState* state_ = nullptr;
};

}  // namespace weave
