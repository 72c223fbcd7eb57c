#pragma once
// weave::as_completed: the tasks of a set, one at a time, in the order they complete
// (asyncio.as_completed).

#include <concepts>
#include <cstddef>
#include <iterator>
#include <memory>
#include <optional>
#include <stdexcept>
#include <utility>
#include <vector>

#include "weave/cancel_scope.hpp"
#include "weave/clock.hpp"
#include "weave/detail/task_watch.hpp"
#include "weave/errors.hpp"
#include "weave/task.hpp"

namespace weave {

/// The range that weave::as_completed returns: each step suspends until the next task
/// completes and yields that task's handle. Tasks already done when as_completed() was called
/// come first, in the order given; then every other task in the order it completes.
///
/// Move-only. Leaving the loop early (break, an exception) is fine: the tasks not yet yielded
/// go on running.
///
/// @par Thread safety
/// Loop-affine, like the tasks.
template <class TaskT>
class AsCompleted {
  struct State {
    std::vector<TaskT> tasks;
    std::optional<detail::TaskWatch> watch;  // none for an empty set
    std::optional<TimePoint> deadline;
    std::size_t yielded = 0;
    SourceLocation where;

    TaskT next_in_fiber(detail::TaskBase* self, SourceLocation at) {
      if (self->loop != &watch->loop())
        throw std::logic_error(
            "weave: as_completed: the tasks belong to another loop than the calling fiber's");
      const detail::TaskWatch::Goal goal{.count = yielded + 1};
      if (deadline) {
        CancelScope scope(*deadline);
        try {
          watch->wait(self, goal, at);
        } catch (const Cancelled& c) {
          if (!scope.owns(c)) throw;  // the caller's cancellation, not the timeout
          throw TimeoutError(
              "weave::as_completed: the timeout expired before every task completed");
        }
      } else {
        watch->wait(self, goal, at);
      }
      return tasks[watch->completed_at(yielded++)];
    }
  };

 public:
  /// Ends the iteration once every task has been yielded.
  struct sentinel {};

  /// An input iterator: `*it` waits for the next task to complete (once per position).
  class iterator {
   public:
    using iterator_category = std::input_iterator_tag;
    using value_type = TaskT;
    using difference_type = std::ptrdiff_t;
    using pointer = void;
    using reference = TaskT;

    /// Suspends until the next task completes, and returns it.
    TaskT operator*() {
      if (!current_) current_ = owner_->next(owner_->state_->where);
      return *current_;
    }
    /// Moves on; a position that was never looked at is still waited for (and skipped).
    iterator& operator++() {
      if (!current_) owner_->next(owner_->state_->where);
      current_.reset();
      return *this;
    }
    void operator++(int) { ++*this; }
    friend bool operator==(const iterator& it, sentinel) noexcept {
      return !it.current_ && it.owner_->remaining() == 0;
    }

   private:
    friend class AsCompleted;
    explicit iterator(AsCompleted* owner) noexcept : owner_(owner) {}
    AsCompleted* owner_;
    std::optional<TaskT> current_;
  };

  AsCompleted(std::vector<TaskT> tasks, std::optional<Duration> timeout, SourceLocation where)
      : state_(std::make_shared<State>()) {
    state_->tasks = std::move(tasks);
    state_->where = where;
    if (state_->tasks.empty()) return;
    // The calling fiber's loop, which every task must share (checked by watch()); outside any
    // fiber, the first task's.
    detail::TaskBase* self = detail::LoopAccess::current_task();
    Loop& loop = self ? *self->loop : detail::loop_of(state_->tasks.front(), "weave::as_completed");
    state_->watch.emplace(loop, "weave::as_completed");
    state_->watch->reserve(state_->tasks.size());
    for (const TaskT& t : state_->tasks) state_->watch->watch(t);
    if (timeout) state_->deadline = detail::deadline_after(loop, *timeout);
  }
  AsCompleted(AsCompleted&&) noexcept = default;
  AsCompleted& operator=(AsCompleted&&) noexcept = default;

  iterator begin() noexcept { return iterator(this); }
  sentinel end() const noexcept { return {}; }

  /// Tasks not yet yielded.
  std::size_t remaining() const noexcept { return state_->tasks.size() - state_->yielded; }

  /// Suspends until the next task completes and returns it. Outside any fiber it runs the loop,
  /// as Task::get() does.
  ///
  /// @par Cancellation
  /// A checkpoint when it has to wait; cancelling the caller leaves the tasks running.
  ///
  /// @par Errors
  /// weave::TimeoutError if as_completed was given a timeout and it expired first (the
  /// remaining tasks go on running); std::out_of_range if every task was already yielded.
  TaskT next(SourceLocation where = SourceLocation::current()) {
    if (remaining() == 0) throw std::out_of_range("weave::as_completed: no task left");
    if (detail::TaskBase* self = detail::LoopAccess::current_task())
      return state_->next_in_fiber(self, where);
    // The helper fiber shares the state, so a loop stopped under it leaves nothing dangling.
    return detail::block_on(state_->watch->loop(), "weave::as_completed", [s = state_, where] {
      return s->next_in_fiber(detail::LoopAccess::current_task(), where);
    });
  }

 private:
  std::shared_ptr<State> state_;
};

/// Yields the tasks in the order they complete, each step suspending until the next one does
/// (asyncio.as_completed). Works with `std::vector<Task<T>>` and `std::vector<AnyTask>`; the
/// tasks are yielded as the same handle type, so `t.get()` gives the value (or rethrows what
/// the task threw: a failed or cancelled task is yielded like any other).
///
/// @par Example
/// @code
/// for (weave::Task<Page> t : weave::as_completed(std::move(downloads))) {
///   show(t.get());  // the first page to arrive first
/// }
/// @endcode
///
/// @par Cancellation
/// Each step that has to wait is a checkpoint; cancelling the caller leaves the tasks running.
///
/// @par Errors
/// std::logic_error for an empty handle or a task of another loop (at once).
template <class TaskT>
requires std::derived_from<TaskT, AnyTask> AsCompleted<TaskT> as_completed(
    std::vector<TaskT> tasks, SourceLocation where = SourceLocation::current()) {
  return AsCompleted<TaskT>(std::move(tasks), std::nullopt, where);
}

/// The same with a deadline `timeout` of loop time from now for the whole iteration: a step
/// still waiting when it expires throws weave::TimeoutError (asyncio's behaviour); the tasks
/// not yet yielded go on running.
template <class TaskT>
requires std::derived_from<TaskT, AnyTask> AsCompleted<TaskT> as_completed(
    std::vector<TaskT> tasks, Duration timeout, SourceLocation where = SourceLocation::current()) {
  return AsCompleted<TaskT>(std::move(tasks), std::optional<Duration>(timeout), where);
}

}  // namespace weave
