#pragma once
// weave::wait_for: wait for a task, a future or a call, with a timeout (asyncio.wait_for).

#include <concepts>
#include <type_traits>
#include <utility>

#include "weave/cancel_scope.hpp"
#include "weave/clock.hpp"
#include "weave/detail/task_watch.hpp"
#include "weave/errors.hpp"
#include "weave/future.hpp"
#include "weave/task.hpp"

namespace weave {

namespace detail {

// Waits until `task` is done or `timeout` has passed. On timeout, or if the caller is
// cancelled meanwhile, cancels the task and waits (shielded) until it has finished. Throws
// TimeoutError if the timeout expired and the task ended cancelled, Cancelled if the caller
// was cancelled; returns normally once the task is done otherwise.
void wait_for_task(TaskBase* self, const AnyTask& task, Duration timeout, SourceLocation where);

template <class T>
void wait_for_future(TaskBase* self, const Future<T>& future, Duration timeout,
                     SourceLocation where) {
  bool timed_out = false;
  try {
    CancelScope scope(deadline_after(*self->loop, timeout));
    try {
      future.wait(where);
    } catch (const Cancelled& c) {
      if (!scope.owns(c)) throw;
      timed_out = true;
    }
  } catch (const Cancelled&) {
    // The caller was cancelled: as asyncio does, the awaited future is cancelled too. A future
    // has nothing to unwind, so there is nothing to wait for.
    Future<T>(future).cancel();
    throw;
  }
  // cancel() fails if the producer completed the future first (possibly on another thread, at
  // the very moment the timeout expired): then its value is returned, not dropped.
  if (timed_out && Future<T>(future).cancel())
    throw TimeoutError("weave::wait_for: the future was not done within the timeout");
}

}  // namespace detail

/// Waits for `task` for at most `timeout` of loop time and returns its result (asyncio.wait_for).
/// On timeout the task is cancelled and the call waits until it has finished unwinding (so
/// nothing it started is still running when wait_for returns), then throws
/// weave::TimeoutError. Outside any fiber it runs the loop, as Task::get() does.
///
/// If the task completes anyway (it finished at the deadline, before the cancellation reached
/// it, or it caught weave::Cancelled and returned), its value is returned or its exception
/// rethrown: nothing the task produced is dropped.
///
/// @par Example
/// @code
/// auto t = weave::spawn(fetch, url);
/// try {
///   Page p = weave::wait_for(t, 10s);
/// } catch (const weave::TimeoutError&) {
///   // t was cancelled and has finished
/// }
/// @endcode
///
/// @par Cancellation
/// A checkpoint when it has to wait. Unlike every other wait in weave, and as asyncio's wait_for
/// does, cancelling the caller cancels the task too; the caller's weave::Cancelled is thrown once
/// the task has finished. The timeout is a cancel scope of its own: a cancellation from outside it
/// is never taken for the timeout.
///
/// @par Errors
/// weave::TimeoutError; what the task threw; weave::Cancelled if the task was cancelled by
/// someone else; std::logic_error for an empty handle, a task of another loop, or a task
/// waiting for itself.
template <class T>
decltype(auto) wait_for(const Task<T>& task, Duration timeout,
                        SourceLocation where = SourceLocation::current()) {
  if (detail::TaskBase* self = detail::LoopAccess::current_task()) {
    detail::wait_for_task(self, task, timeout, where);
  } else {
    detail::block_on(
        detail::loop_of(task, "weave::wait_for"), "weave::wait_for", [task, timeout, where] {
          detail::wait_for_task(detail::LoopAccess::current_task(), task, timeout, where);
        });
  }
  return task.get(where);
}

/// The same for a temporary task (`weave::wait_for(weave::spawn(fn), 1s)`): the result is moved
/// out of the task.
template <class T>
T wait_for(Task<T>&& task, Duration timeout, SourceLocation where = SourceLocation::current()) {
  if constexpr (std::is_void_v<T>)
    wait_for(static_cast<const Task<T>&>(task), timeout, where);
  else
    return std::move(wait_for(static_cast<const Task<T>&>(task), timeout, where));
}

/// The same for a type-erased handle: nothing is returned, what the task threw is rethrown
/// (weave::Cancelled if someone else cancelled it).
inline void wait_for(const AnyTask& task, Duration timeout,
                     SourceLocation where = SourceLocation::current()) {
  if (detail::TaskBase* self = detail::LoopAccess::current_task()) {
    detail::wait_for_task(self, task, timeout, where);
  } else {
    detail::block_on(
        detail::loop_of(task, "weave::wait_for"), "weave::wait_for", [task, timeout, where] {
          detail::wait_for_task(detail::LoopAccess::current_task(), task, timeout, where);
        });
  }
  detail::rethrow_outcome(task.state());
}

/// Waits for `future` for at most `timeout` and returns its value (a reference into the
/// future's state, as Future::get() does). On timeout the future is cancelled (its producer's
/// later set_value fails) and weave::TimeoutError is thrown; if the producer completed it at
/// that very moment, its value is returned instead.
///
/// @par Cancellation
/// A checkpoint when it has to wait; cancelling the caller cancels the future too (as asyncio
/// does).
///
/// @par Errors
/// weave::TimeoutError; what the future holds (weave::Cancelled if it was cancelled).
template <class T>
decltype(auto) wait_for(const Future<T>& future, Duration timeout,
                        SourceLocation where = SourceLocation::current()) {
  if (detail::TaskBase* self = detail::LoopAccess::current_task()) {
    detail::wait_for_future(self, future, timeout, where);
  } else {
    if (!future.valid()) throw std::logic_error("weave: weave::wait_for on an empty future");
    detail::block_on(Loop::current(), "weave::wait_for", [future, timeout, where] {
      detail::wait_for_future(detail::LoopAccess::current_task(), future, timeout, where);
    });
  }
  return future.get(where);
}

/// Runs `fn()` (or `fn(scope)`) on the calling fiber with a deadline `timeout` from now: the
/// callable form of asyncio.wait_for, which is weave::fail_after(timeout, fn). Whatever `fn`
/// is waiting for when the deadline passes is interrupted by weave::Cancelled, which becomes
/// weave::TimeoutError at the edge.
///
/// @par Example
/// @code
/// std::string line = weave::wait_for([&] { return conn.read_line(); }, 5s);
/// @endcode
///
/// @par Errors
/// weave::TimeoutError; anything `fn` throws; std::logic_error outside a fiber.
template <class F>
requires(std::invocable<F&> ||
         std::invocable<F&, CancelScope&>) detail::scope_result_t<F> wait_for(F&& fn,
                                                                              Duration timeout) {
  return fail_after(timeout, std::forward<F>(fn));
}

}  // namespace weave
