#pragma once
// weave::bridge::submit: the reverse direction. Callback-style code starts a fiber and gets its
// outcome through a callback or a std::future, from the loop's thread or from any other.

#include <exception>
#include <future>
#include <type_traits>
#include <utility>

#include "weave/errors.hpp"
#include "weave/loop.hpp"
#include "weave/result.hpp"
#include "weave/task.hpp"

namespace weave::bridge {

namespace detail {

// Hands a finished task's outcome to a callback, in the first form the callback accepts.
template <class R, class Callback>
void deliver(Callback& cb, const Task<R>& task) {
  if constexpr (std::is_invocable_v<Callback&, Result<R>>) {
    cb(Result<R>::from(task));
  } else {
    std::exception_ptr error;
    if (task.cancelled())
      error = std::make_exception_ptr(Cancelled{});
    else
      error = task.exception();  // retrieved: it is the callback's now
    if constexpr (std::is_void_v<R>) {
      if constexpr (std::is_invocable_v<Callback&, std::exception_ptr>) {
        cb(std::move(error));
      } else {
        static_assert(std::is_invocable_v<Callback&>,
                      "weave::bridge::submit: the callback must take (std::exception_ptr), "
                      "(weave::Result<void>) or ()");
        if (error) std::rethrow_exception(error);  // to the loop's exception handler
        cb();
      }
    } else if constexpr (std::is_invocable_v<Callback&, std::exception_ptr, R&&>) {
      static_assert(std::is_default_constructible_v<R>,
                    "weave::bridge::submit: an error-first callback gets a value-initialised R "
                    "on failure, so R must be default-constructible; take weave::Result<R>");
      if (error)
        cb(std::move(error), R{});
      else
        cb(std::exception_ptr(), std::move(const_cast<Task<R>&>(task).get()));
    } else {
      static_assert(std::is_invocable_v<Callback&, R&&>,
                    "weave::bridge::submit: the callback must take (std::exception_ptr, R), "
                    "(weave::Result<R>) or (R)");
      if (error) std::rethrow_exception(error);  // to the loop's exception handler
      cb(std::move(const_cast<Task<R>&>(task).get()));
    }
  }
}

}  // namespace detail

/// Starts `fn()` in a new fiber on `loop` and calls `callback` with its outcome when it ends:
/// how callback-style code calls fiber code. The callback runs on the loop's thread (as a done
/// callback, never inside a fiber), and may take:
/// - `(weave::Result<R>)`: the value, the exception or the cancellation;
/// - `(std::exception_ptr, R)` (or `(std::exception_ptr)` for void): error first, as callback
///   APIs do; on failure R is value-initialised, and a cancellation is a weave::Cancelled in
///   the exception_ptr;
/// - `(R)` (or `()`): the value only; a failure then goes to the loop's exception handler.
///
/// @par Example
/// @code
/// weave::bridge::submit(loop, [] { return fetch_all(); },   // fiber code
///                       [](std::exception_ptr e, Report r) { on_report(e, r); });
/// @endcode
/// @par Thread safety
/// Any thread: from the loop's thread the fiber is spawned at once (the loop need not be
/// running yet); from another thread the spawn is posted with call_soon_threadsafe. The
/// callback always runs on the loop's thread: a foreign thread that needs the outcome on its
/// own thread posts it there from the callback, or uses the std::future form.
/// @par Errors
/// std::runtime_error if the loop is closed (posted form). If the loop closes before the
/// callback could run, the callback is destroyed without being called.
template <class F, class Callback>
void submit(Loop& loop, F&& fn, Callback&& callback) {
  using R = std::invoke_result_t<std::decay_t<F>&>;
  auto start = [&loop, f = std::forward<F>(fn), cb = std::forward<Callback>(callback)]() mutable {
    Task<R> task = loop.spawn(std::move(f));
    task.add_done_callback(
        [cb = std::move(cb)](const Task<R>& t) mutable { detail::deliver<R>(cb, t); });
  };
  if (weave::detail::LoopAccess::inbox(loop)->owned_by_this_thread())
    start();
  else
    loop.call_soon_threadsafe(std::move(start));
}

/// Starts `fn()` in a new fiber on `loop` and returns a std::future of its outcome (a
/// cancellation is a weave::Cancelled exception in the future): for threads that block, or
/// poll, instead of taking a callback (asyncio's run_coroutine_threadsafe).
///
/// Never wait on the future on the loop's own thread: that blocks the loop, and the fiber
/// could not run. From the loop's thread use the callback form, or weave's own Task.
///
/// @par Thread safety
/// Any thread (see the callback form).
/// @par Errors
/// std::runtime_error if the loop is closed (posted form). If the loop closes before the fiber
/// ended, the future gets std::future_error(broken_promise).
template <class F>
auto submit(Loop& loop, F&& fn) -> std::future<std::invoke_result_t<std::decay_t<F>&>> {
  using R = std::invoke_result_t<std::decay_t<F>&>;
  std::promise<R> promise;
  std::future<R> future = promise.get_future();
  submit(loop, std::forward<F>(fn), [p = std::move(promise)](Result<R> r) mutable {
    if (std::exception_ptr e = r.exception()) {
      p.set_exception(std::move(e));
    } else if constexpr (std::is_void_v<R>) {
      p.set_value();
    } else {
      p.set_value(std::move(*r));
    }
  });
  return future;
}

}  // namespace weave::bridge
