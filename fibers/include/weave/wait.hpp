#pragma once
// weave::wait: wait for some or all of a set of tasks, with an optional timeout (asyncio.wait).

#include <concepts>
#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include "weave/cancel_scope.hpp"
#include "weave/clock.hpp"
#include "weave/detail/task_watch.hpp"
#include "weave/task.hpp"

namespace weave {

/// When weave::wait returns (asyncio's return_when).
enum class ReturnWhen : std::uint8_t {
  /// When every task is done (or the timeout expired).
  all_completed,
  /// As soon as one task is done.
  first_completed,
  /// As soon as one task ends with an exception (a cancelled task does not count), or when
  /// every task is done.
  first_exception,
};

/// What weave::wait returns: the tasks that are done and those that are not, each in the order
/// they were given. Use with structured bindings: `auto [done, pending] = weave::wait(...)`.
template <class TaskT>
struct WaitResult {
  std::vector<TaskT> done;
  std::vector<TaskT> pending;
};

namespace detail {

template <class TaskT>
WaitResult<TaskT> wait_in_fiber(TaskBase* self, const std::vector<TaskT>& tasks,
                                std::optional<Duration> timeout, ReturnWhen when,
                                SourceLocation where) {
  WaitResult<TaskT> out;
  if (tasks.empty()) return out;
  TaskWatch watch(*self->loop, "weave::wait");
  watch.reserve(tasks.size());
  for (const TaskT& t : tasks) watch.watch(t);
  TaskWatch::Goal goal{.count = tasks.size()};
  if (when == ReturnWhen::first_completed) goal.count = 1;
  if (when == ReturnWhen::first_exception) goal.on_error = true;
  if (timeout) {
    CancelScope scope(deadline_after(*self->loop, *timeout));
    try {
      watch.wait(self, goal, where);
    } catch (const Cancelled& c) {
      if (!scope.owns(c)) throw;  // the caller's cancellation, not the timeout
    }
  } else {
    watch.wait(self, goal, where);
  }
  // Done is what is done now, which after a wake-up may be more than the goal asked for.
  for (const TaskT& t : tasks) (t.done() ? out.done : out.pending).push_back(t);
  return out;
}

template <class TaskT>
WaitResult<TaskT> wait_any_context(const std::vector<TaskT>& tasks, std::optional<Duration> timeout,
                                   ReturnWhen when, SourceLocation where) {
  if (TaskBase* self = LoopAccess::current_task())
    return wait_in_fiber(self, tasks, timeout, when, where);
  if (tasks.empty()) return {};
  return block_on(loop_of(tasks.front(), "weave::wait"), "weave::wait",
                  [tasks, timeout, when, where] {
                    return wait_in_fiber(LoopAccess::current_task(), tasks, timeout, when, where);
                  });
}

}  // namespace detail

/// Waits until the tasks are done, or the first of them is, or the first fails (`return_when`),
/// and returns which are done and which are still pending (asyncio.wait). Works with
/// `std::vector<Task<T>>` and `std::vector<AnyTask>` alike, and returns the same handle type.
///
/// It never throws for what a task did: look at the done tasks with `get()` or `exception()`.
/// Outside any fiber it runs the loop, as Task::get() does.
///
/// @par Example
/// @code
/// std::vector<weave::AnyTask> tasks{fetch_a, fetch_b, heartbeat};
/// auto [done, pending] = weave::wait(tasks, weave::ReturnWhen::first_completed);
/// @endcode
///
/// @par Cancellation
/// A checkpoint when it has to wait (when `return_when` is already met it returns at once without
/// looking for a cancellation, as every wait in weave). Cancelling the caller throws
/// weave::Cancelled in it; the tasks are not affected.
///
/// @par Errors
/// std::logic_error for an empty handle or a task of another loop. An empty vector returns
/// two empty vectors at once (asyncio raises ValueError).
template <class TaskT>
requires std::derived_from<TaskT, AnyTask> WaitResult<TaskT> wait(
    const std::vector<TaskT>& tasks, ReturnWhen return_when = ReturnWhen::all_completed,
    SourceLocation where = SourceLocation::current()) {
  return detail::wait_any_context(tasks, std::nullopt, return_when, where);
}

/// The same with a timeout: returns when `return_when` is met or when `timeout` of loop time
/// has passed, whichever comes first. A timeout is not an error: the tasks not done are in
/// `pending`, still running (asyncio's behaviour).
///
/// @par Example
/// @code
/// auto [done, pending] = weave::wait(tasks, 5s);
/// for (auto& t : pending) t.cancel();
/// @endcode
///
/// @par Cancellation
/// A checkpoint when it has to wait. The timeout is a cancel scope of its own: a cancellation from
/// outside it (Task::cancel(), an enclosing fail_after) is thrown as weave::Cancelled, never taken
/// for the timeout.
template <class TaskT>
requires std::derived_from<TaskT, AnyTask> WaitResult<TaskT> wait(
    const std::vector<TaskT>& tasks, Duration timeout,
    ReturnWhen return_when = ReturnWhen::all_completed,
    SourceLocation where = SourceLocation::current()) {
  return detail::wait_any_context(tasks, std::optional<Duration>(timeout), return_when, where);
}

}  // namespace weave
