#pragma once
// Unix signals handled on the loop: add_signal_handler / remove_signal_handler (asyncio's), and
// SignalSet / wait_for_signal for fibers.

#include <csignal>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <optional>
#include <type_traits>
#include <utility>

#include "weave/detail/intrusive_list.hpp"
#include "weave/detail/source_location.hpp"
#include "weave/loop.hpp"

namespace weave::net {

namespace detail {
struct SignalHub;
}

/// Runs `handler(sig)` on `loop`, as an ordinary callback (never inside the signal handler and
/// never on another thread), each time signal `sig` is delivered to the process
/// (asyncio's loop.add_signal_handler). Replaces the loop's previous handler for `sig`.
///
/// The process-wide disposition of `sig` is taken over while the loop handles it (by a handler
/// for this loop or a SignalSet), and the disposition found before is restored when the last of
/// them goes. The signal may arrive on any thread (the process's other threads, the executor's
/// pool, another loop's thread): its real handler only records it and wakes the loop, so no
/// thread has to block it. Deliveries that arrive faster than the loop runs are counted, and the
/// handler runs once per delivery the kernel made (the kernel itself merges a standard signal
/// that is sent again while still pending).
///
/// A handler does not keep Loop::run() going (asyncio's does not either): serve with
/// run_forever(), or with a fiber that waits, for example in a SignalSet.
///
/// @par Example
/// @code
/// weave::net::add_signal_handler(SIGINT, [&] { server.close(); });
/// @endcode
///
/// @par Thread safety
/// Call it on `loop`'s thread. A signal is handled by one loop at a time: the loops of
/// different threads may handle different signals.
/// @par Errors
/// std::invalid_argument for a signal that cannot be handled this way (SIGKILL, SIGSTOP, the
/// fault signals SIGSEGV/SIGBUS/SIGFPE/SIGILL/SIGTRAP/SIGSYS, or a number out of range);
/// std::logic_error if another loop handles `sig`; std::system_error if sigaction fails.
/// An exception thrown by the handler goes to the loop's exception handler.
void add_signal_handler(int sig, std::function<void(int signo)> handler,
                        Loop& loop = Loop::current());

/// The same for a handler that takes no argument.
template <class F>
requires(std::is_invocable_v<F&> &&
         !std::is_invocable_v<F&, int>) void add_signal_handler(int sig, F handler,
                                                                Loop& loop = Loop::current()) {
  add_signal_handler(sig, std::function<void(int)>([h = std::move(handler)](int) mutable { h(); }),
                     loop);
}

/// Removes the loop's handler for `sig` (asyncio's loop.remove_signal_handler); if no
/// SignalSet of the loop listens for `sig` either, the disposition found before the loop took
/// the signal is restored. Returns false if the loop had no handler for `sig`.
///
/// @par Thread safety
/// Call it on `loop`'s thread. A handler may remove itself (or another) while it runs.
/// @par Errors
/// std::invalid_argument for a signal number out of range.
bool remove_signal_handler(int sig, Loop& loop = Loop::current());

/// A set of signals that fibers wait for (Boost.Asio's signal_set, for fibers): from
/// construction to destruction the loop takes the signals (see add_signal_handler), and each
/// delivery is kept until a fiber takes it with wait().
///
/// Deliveries are queued in the order they arrived; like the kernel's own pending set, a signal
/// that arrives again before the earlier delivery was taken is kept once. Several SignalSets
/// may listen for the same signal (each gets every delivery), together with a handler from
/// add_signal_handler.
///
/// @par Example
/// @code
/// weave::net::SignalSet stop({SIGINT, SIGTERM});  // from here on Ctrl-C is ours
/// auto server = weave::net::start_server(handle, "127.0.0.1", 8080);
/// int sig = stop.wait();                          // a fiber sleeps until Ctrl-C
/// server.close();
/// @endcode
///
/// @par Thread safety
/// Loop-affine: create, wait on and destroy it on its loop's thread; it must not outlive the
/// loop. Not movable (the loop's signal dispatcher points at it).
class SignalSet {
 public:
  /// Starts listening for `signals` on `loop`.
  /// @par Errors
  /// As add_signal_handler(); nothing is taken over if any signal is refused.
  explicit SignalSet(std::initializer_list<int> signals, Loop& loop = Loop::current());
  SignalSet(const SignalSet&) = delete;
  SignalSet& operator=(const SignalSet&) = delete;
  /// Stops listening: the signals go back to their earlier disposition unless the loop still
  /// handles them otherwise. No fiber may be waiting.
  ~SignalSet();

  /// Adds `sig` to the set (nothing happens if it is already there).
  /// @par Errors
  /// As add_signal_handler().
  void add(int sig);
  /// Removes `sig` from the set and drops its undelivered occurrence, if any.
  void remove(int sig);
  /// True if the set listens for `sig`.
  bool contains(int sig) const noexcept;

  /// Returns the oldest delivery not yet taken; if there is none, suspends the calling fiber
  /// until a signal of the set arrives.
  ///
  /// @par Cancellation
  /// A checkpoint when it has to wait. A cancelled wait takes nothing: a signal that arrived
  /// while the fiber was being cancelled stays for the next wait() (or the next waiter).
  /// @par Errors
  /// std::logic_error outside a fiber.
  int wait(SourceLocation where = SourceLocation::current());
  /// The oldest delivery not yet taken, if any, without waiting.
  std::optional<int> try_wait() noexcept;

 private:
  friend struct detail::SignalHub;
  struct Waiter : weave::detail::ListNode {
    explicit Waiter(weave::detail::TaskBase* t) noexcept : task(t) {}
    weave::detail::TaskBase* task;
  };
  static std::uint64_t bit(int sig) noexcept { return std::uint64_t{1} << (sig - 1); }
  void deliver(int sig) noexcept;
  void wake_one() noexcept;
  int take() noexcept;

  detail::SignalHub* hub_ = nullptr;
  std::uint64_t signals_ = 0;  // bit sig-1 for each signal of the set
  std::uint64_t queued_ = 0;   // the signals in queue_
  int queue_[64] = {};         // FIFO of undelivered signals, each at most once
  int head_ = 0;
  int count_ = 0;
  weave::detail::IntrusiveList waiters_;
};

/// Suspends the calling fiber until one of `signals` arrives and returns it: a SignalSet that
/// lives for the call. Signals that arrive before the call follow their previous disposition
/// (for SIGINT, usually ending the process), so a server that must not miss one creates a
/// SignalSet before it starts serving.
///
/// @par Cancellation
/// A checkpoint; the signals' dispositions are restored when it returns or is cancelled.
/// @par Errors
/// As SignalSet's constructor and wait().
int wait_for_signal(std::initializer_list<int> signals,
                    SourceLocation where = SourceLocation::current());

}  // namespace weave::net
