#pragma once
// The waiting part of gather, wait and as_completed: one call's view of many tasks, which of
// them have completed and in which order, and a fiber parked until enough of them have.

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>

#include "weave/clock.hpp"
#include "weave/detail/source_location.hpp"
#include "weave/task.hpp"

namespace weave::detail {

/// `loop.time() + d`, saturating at TimePoint::max() (a timeout of Duration::max() is "never").
inline TimePoint deadline_after(const Loop& loop, Duration d) noexcept {
  const TimePoint now = loop.time();
  if (d > Duration::zero() && d >= TimePoint::max() - now) return TimePoint::max();
  return now + d;
}

/// The loop of `t`; std::logic_error naming `what` for an empty handle.
inline Loop& loop_of(const AnyTask& t, const char* what) {
  if (!t) throw std::logic_error(std::string("weave: ") + what + " was given an empty task handle");
  return t.loop();
}

/// Runs `fn` in a new fiber of `loop` and runs the loop until that fiber is done, returning its
/// result: how the waiting calls that may be used outside any fiber (like Task::get) do it.
/// `fn` must own everything it uses: if the loop is stopped first, the call throws
/// std::runtime_error and the fiber outlives it.
template <class F>
auto block_on(Loop& loop, const char* what, F fn) {
  if (loop.is_running())
    throw std::logic_error(std::string("weave: ") + what +
                           " would block the loop: it was called from a callback on the loop's "
                           "own context; wait from a fiber or add a done callback");
  return loop.run_until_complete(loop.spawn(SpawnOptions{.name = what}, std::move(fn)));
}

/// Watches a set of tasks for one waiting call.
///
/// A task already done when it is watched is recorded at once (in watching order); the others
/// get one done callback each, which records them in the order they complete and wakes the
/// waiting fiber only when its goal is met (so gathering 1,000 tasks wakes the waiter once, not
/// 1,000 times).
///
/// The state is on the heap and reference-counted: the callbacks of tasks still running when
/// the call returns (gather's first failure, wait's FIRST_COMPLETED or timeout) run later,
/// find the watch closed and do nothing. Until their task finishes, such a callback keeps a
/// few dozen bytes alive; the loop offers no way to remove a done callback.
///
/// @par Thread safety
/// Loop-affine: the watcher and every watched task must belong to the calling fiber's loop.
class TaskWatch {
 public:
  static constexpr std::uint32_t kNone = UINT32_MAX;

  /// What ends a wait besides `count` completions.
  struct Goal {
    std::size_t count = 0;      // wake once this many tasks have completed
    bool on_error = false;      // ... or as soon as one ends with an exception
    bool on_cancelled = false;  // ... or as soon as one ends cancelled
  };

  /// Watches tasks of `loop`; `what` names the call in errors.
  TaskWatch(Loop& loop, const char* what);
  TaskWatch(const TaskWatch&) = delete;
  TaskWatch& operator=(const TaskWatch&) = delete;
  TaskWatch(TaskWatch&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
  ~TaskWatch();

  /// Watches `t` as the next index (0, 1, ...). Throws std::logic_error for an empty handle, a
  /// task of another loop, or the calling task itself (which would wait forever).
  void watch(const AnyTask& t);
  void reserve(std::size_t n);

  Loop& loop() const noexcept;
  std::size_t watched() const noexcept;
  /// Tasks recorded as completed so far.
  std::size_t completed() const noexcept;
  /// The index of the k-th task to complete.
  std::uint32_t completed_at(std::size_t k) const noexcept;
  /// The first task to end with an exception or a cancellation, or kNone.
  std::uint32_t first_failure() const noexcept;

  /// Suspends `self` (a fiber of the loop) until `goal` is met; returns at once if it already is.
  ///
  /// @par Cancellation
  /// A checkpoint each time it would suspend: throws weave::Cancelled (the watched tasks are not
  /// affected). When the goal is already met it returns without looking for a cancellation, as
  /// every wait in weave does.
  void wait(TaskBase* self, Goal goal, SourceLocation where);

  struct State;  // defined in task_watch.cpp

 private:
  State* s_;
};

}  // namespace weave::detail
