#pragma once
// weave::AsioDriver: a Boost.Asio io_context and a weave loop on one thread, together.

#include <boost/asio/io_context.hpp>
#include <memory>
#include <stdexcept>
#include <type_traits>
#include <utility>

#include "weave/bridge/embedder.hpp"
#include "weave/loop.hpp"
#include "weave/task.hpp"

namespace weave {

/// Runs a weave loop inside a Boost.Asio io_context, on the io_context's thread: while the
/// driver exists, whatever runs the io_context (io.run(), run_one(), this class's run calls)
/// also runs the loop's fibers, callbacks and timers. Legacy Asio handlers and weave fibers then
/// share one thread and call each other freely: fibers use Asio objects with weave::use_fiber,
/// handlers start fibers with weave::bridge::submit.
///
/// How: the loop's epoll fd (Loop::native_handle) is registered with the io_context's reactor
/// (readable when other threads post to the loop or the loop's own I/O is ready), an Asio timer
/// follows the loop's next timer, and each turn of the loop (Loop::run_nowait) is an Asio
/// handler. A turn that leaves work ready posts the next one, so Asio's ready handlers and the
/// loop's take turns, and neither waits for the other more than one turn. When both are idle
/// the thread sleeps in the io_context's epoll_wait: no busy polling, ~0% CPU. Completions that
/// wake a fiber from an Asio handler (use_fiber, bridge::Completion) ask for a turn through
/// bridge::Embedder.
///
/// @par Example
/// @code
/// boost::asio::io_context io;
/// weave::Loop loop;
/// weave::AsioDriver driver(io, loop);
/// auto task = loop.spawn([&] {
///   boost::asio::steady_timer t(io, 1s);
///   t.async_wait(weave::use_fiber);   // suspends this fiber only
/// });
/// driver.run_until_complete(task);  // or io.run(), which now never runs out of work
/// @endcode
///
/// @par Thread safety
/// Loop-affine: create, use and destroy the driver on the loop's thread, and run the
/// io_context on that thread only. Declare it after the io_context and the loop: it must be
/// destroyed before either.
///
/// While the driver exists the io_context always has work (the wait on the loop's fd), so
/// io.run() returns only after io.stop(); run() and run_until_complete() return on their own.
class AsioDriver final : public bridge::Embedder {
 public:
  /// Attaches `loop` to `io`. The loop must not be running or closed.
  explicit AsioDriver(boost::asio::io_context& io, Loop& loop = Loop::current());
  /// Detaches: the loop is no longer run by the io_context (its pending waits are cancelled).
  ~AsioDriver() override;

  /// Runs the io_context (and so the loop) on this thread until `task` is done, then returns its
  /// result or rethrows its exception.
  /// @par Errors
  /// std::runtime_error if loop.stop() was called, or the io_context was stopped, first.
  template <class T>
  decltype(auto) run_until_complete(Task<T>& task) {
    drive([](void* t) { return static_cast<detail::TaskBase*>(t)->done(); }, task.state());
    if (!task.done())
      throw std::runtime_error(
          "weave: the loop or the io_context stopped before the task completed");
    return task.get();
  }
  template <class T>
  T run_until_complete(Task<T>&& task) {
    if constexpr (std::is_void_v<T>)
      run_until_complete(task);
    else
      return std::move(run_until_complete(task));
  }
  /// Runs the io_context until the loop has nothing left to do (Loop::alive() is false), or
  /// until loop.stop() or io.stop().
  void run();

  /// Ends the loop the way asyncio.run does, with the io_context still running it: cancels every
  /// live task, runs the io_context until they have finished (their use_fiber operations are
  /// cancelled and complete on the way out), then detaches and closes the loop. The driver is
  /// inert afterwards. A task that swallows its cancellation and waits again keeps this call
  /// running, as it would keep the program from ending.
  void close_loop();

  /// Asks for a turn of the loop soon (posted to the io_context). Bridge completions call it
  /// through Embedder::notify, and the loop's hook when work is scheduled or a timer armed while
  /// the loop is not running.
  void request_turn() noexcept override;
  /// Runs a turn at once (use_fiber's handlers do, from the top of an Asio handler).
  void run_turn_now() noexcept override;
  /// Runs a task woken by a use_fiber handler at once, when the loop is idle (see
  /// Embedder::resume_now).
  bool resume_now(detail::TaskBase* t) noexcept override;

  boost::asio::io_context& context() const noexcept;

  struct Core;

 private:
  void drive(bool (*done)(void*), void* arg);
  void detach() noexcept;
  std::shared_ptr<Core> core_;
};

/// weave::run for a program built around an io_context: creates a loop driven by `io` on this
/// thread, runs `fn(args...)` in a fiber on it until it returns, ends the loop with
/// AsioDriver::close_loop(), and returns fn's result (or rethrows its exception). The
/// io_context itself is left as it is, with whatever else it has to do.
///
/// @par Example
/// @code
/// boost::asio::io_context io;
/// std::string reply = weave::run(io, [&] { return fetch_over_asio(io); });
/// @endcode
template <class F, class... Args>
decltype(auto) run(boost::asio::io_context& io, F&& fn, Args&&... args) {
  using R = std::invoke_result_t<std::decay_t<F>, std::decay_t<Args>...>;
  Loop loop;
  AsioDriver driver(io, loop);
  auto main =
      loop.spawn(SpawnOptions{.name = "main"}, std::forward<F>(fn), std::forward<Args>(args)...);
  struct Close {
    AsioDriver& d;
    ~Close() {
      try {
        d.close_loop();
      } catch (...) {
        // The io_context was stopped under us: the loop's destructor abandons what is left.
      }
    }
  } close{driver};
  if constexpr (std::is_void_v<R>)
    driver.run_until_complete(main);
  else
    return R(std::move(driver.run_until_complete(main)));
}

}  // namespace weave
