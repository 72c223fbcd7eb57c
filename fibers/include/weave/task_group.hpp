#pragma once
// Structured concurrency: weave::task_group and weave::TaskGroup (asyncio.TaskGroup, Trio's
// nursery).

#include <cstddef>
#include <exception>
#include <functional>
#include <optional>
#include <stdexcept>
#include <type_traits>
#include <utility>
#include <vector>

#include "weave/cancel_scope.hpp"
#include "weave/detail/source_location.hpp"
#include "weave/errors.hpp"
#include "weave/exception_group.hpp"
#include "weave/task.hpp"

namespace weave {

namespace detail {
struct TaskGroupRunner;
}

/// A set of child tasks whose lives are nested in a block of the parent's code. Obtained only
/// through weave::task_group(), which passes it to the block (the *body*) and does not return
/// until every child has finished.
///
/// Why a function and not an RAII object: the end of the group must be able to throw (the
/// children's exceptions, or the parent's cancellation), and it must wait, which may itself be
/// interrupted. A destructor can do neither safely while another exception unwinds the parent;
/// a forgotten `join()` would silently cancel the children. A function that owns the whole
/// block has no such corner: it always waits, and always reports.
///
/// Semantics (asyncio's TaskGroup, Trio's nursery):
/// - task_group() returns only once every child has finished, however the body ended.
/// - The first child that fails (throws anything but weave::Cancelled) makes the group cancel
///   every other child and the body itself, which is the parent fiber: the body receives
///   weave::Cancelled at its current or next checkpoint, and the group absorbs it at its edge.
///   Once every child has finished, task_group throws one weave::ExceptionGroup holding every
///   child's exception in the order they happened (and the body's, if it threw).
/// - A child that ends cancelled is not an error, whoever cancelled it.
/// - A child spawned while the group is failing is cancelled at once: its function never runs.
/// - Children may spawn more children into the group (pass the TaskGroup& along), also while
///   the parent is already waiting at the end of the group: it waits for those too. The
///   TaskGroup& is valid until task_group() returns, which is after every child has finished.
/// - Cancelling the parent (Task::cancel(), or an enclosing cancel scope such as fail_after)
///   cancels every child; once they have all finished, the parent's weave::Cancelled is rethrown
///   unchanged, so the enclosing scope's edge recognises it (fail_after turns it into
///   TimeoutError, move_on_after returns quietly). To cancel a whole group, put it in a scope.
/// - If there are errors too, the ExceptionGroup wins, but the cancellation is not lost: a
///   Task::cancel() is requested again, and a scope stays cancelled, so the parent's next
///   checkpoint throws weave::Cancelled (asyncio 3.13 does the same).
///
/// @par Example
/// @code
/// int total = weave::task_group([&](weave::TaskGroup& g) {
///   auto a = g.spawn(count_words, "a.txt");
///   auto b = g.spawn(count_words, "b.txt");
///   g.spawn([&] { progress_bar(a, b); });
///   return a.get() + b.get();  // if `a` fails, `b` and the progress bar are cancelled
/// });
/// @endcode
///
/// @par Thread safety
/// Loop-affine: spawn only on the loop's thread (from the parent or from any fiber of the loop).
class TaskGroup {
 public:
  TaskGroup(const TaskGroup&) = delete;
  TaskGroup& operator=(const TaskGroup&) = delete;

  /// Starts `fn(args...)` as a child of the group (see weave::spawn) and returns its Task.
  ///
  /// @par Errors
  /// std::logic_error if the loop is closed.
  template <class F, class... Args>
  requires(!std::is_same_v<std::decay_t<F>, SpawnOptions>) auto spawn(F&& fn, Args&&... args) {
    return spawn(SpawnOptions{}, std::forward<F>(fn), std::forward<Args>(args)...);
  }
  /// The same with a name, a stack size or eager start.
  template <class F, class... Args>
  auto spawn(SpawnOptions options, F&& fn, Args&&... args) {
    // Unreachable for correct code (the group is destroyed right after it closes); a cheap
    // guard against a child that is somehow not accounted for.
    if (closed_) throw std::logic_error("weave: TaskGroup::spawn on a group that has finished");
    // A child of a failing group is cancelled before it ever runs, so it must not start eagerly.
    if (cancelling_) options.eager = false;
    const std::size_t slot = reserve_slot();
    try {
      auto task =
          loop_->spawn(std::move(options), std::forward<F>(fn), std::forward<Args>(args)...);
      adopt(slot, task);
      return task;
    } catch (...) {
      unreserve_slot(slot);
      throw;
    }
  }

  /// Children the group is still waiting for (a child's end is seen through its done callback,
  /// on the loop's next turn).
  std::size_t size() const noexcept { return running_; }
  /// True once the group is cancelling its children: a child failed, the body threw, or the
  /// parent was cancelled.
  bool cancelling() const noexcept { return cancelling_; }
  Loop& loop() const noexcept { return *loop_; }

 private:
  friend struct detail::TaskGroupRunner;

  explicit TaskGroup(detail::TaskBase* parent) noexcept;
  ~TaskGroup() = default;

  std::size_t reserve_slot();
  void unreserve_slot(std::size_t slot) noexcept;
  void adopt(std::size_t slot, const AnyTask& task) noexcept;
  void on_child_done(std::size_t slot, const AnyTask& task) noexcept;
  void cancel_all() noexcept;
  void on_body_error(std::exception_ptr e) noexcept;
  void on_body_cancelled(std::exception_ptr e, bool task_level) noexcept;
  void wait_children(SourceLocation where);
  void finish(SourceLocation where);

  detail::TaskBase* parent_;
  Loop* loop_;
  CancelScope* body_scope_ = nullptr;  // while the body runs
  // Children not yet finished, by slot; a finished child's slot is reused. Slots are released
  // by the done callbacks, so at most as many as children alive at once.
  std::vector<AnyTask> slots_;
  std::vector<std::size_t> free_slots_;
  std::size_t running_ = 0;  // children whose done callback has not run yet
  std::vector<std::exception_ptr> errors_;
  std::exception_ptr parent_cancelled_;  // the Cancelled that reached the group from outside
  bool parent_cancel_is_task_level_ = false;
  bool cancelling_ = false;
  bool closed_ = false;
  bool lost_error_ = false;             // an error could not be recorded (out of memory)
  detail::TaskBase* waiter_ = nullptr;  // the parent, while parked at the end of the group
};

namespace detail {

struct TaskGroupRunner {
  // The body's cancel scope, which the group cancels when it starts failing.
  class BodyScope {
   public:
    explicit BodyScope(TaskGroup& g) : group_(g) {
      group_.body_scope_ = &scope_;
      if (group_.cancelling_) scope_.cancel();
    }
    BodyScope(const BodyScope&) = delete;
    BodyScope& operator=(const BodyScope&) = delete;
    ~BodyScope() { group_.body_scope_ = nullptr; }
    bool owns(const Cancelled& c) const noexcept { return scope_.owns(c); }

   private:
    TaskGroup& group_;
    CancelScope scope_;
  };

  template <class F>
  static auto run(F& body, SourceLocation where) {
    using R = std::invoke_result_t<F&, TaskGroup&>;
    static_assert(!std::is_reference_v<R>, "the body of weave::task_group must return by value");
    TaskGroup group(LoopAccess::require_fiber("weave::task_group"));
    std::optional<std::conditional_t<std::is_void_v<R>, bool, R>> result;
    try {
      BodyScope scope(group);
      try {
        if constexpr (std::is_void_v<R>) {
          std::invoke(body, group);
          result.emplace(true);
        } else {
          result.emplace(std::invoke(body, group));
        }
      } catch (const Cancelled& c) {
        // The group cut its own body short because it is failing; finish() reports why.
        if (!scope.owns(c)) throw;
      }
    } catch (const Cancelled& c) {
      group.on_body_cancelled(std::current_exception(), c.scope() == nullptr);
    } catch (...) {
      group.on_body_error(std::current_exception());  // reported in the ExceptionGroup
    }
    group.finish(where);  // throws unless the body and every child succeeded
    if constexpr (!std::is_void_v<R>) return std::move(*result);
  }
};

}  // namespace detail

/// Runs `body(group)` on the calling fiber with a new TaskGroup, then waits until every child
/// spawned into the group has finished, and returns what the body returned (see TaskGroup for
/// the semantics).
///
/// @par Example
/// @code
/// weave::task_group([&](weave::TaskGroup& g) {
///   for (auto& url : urls) g.spawn(download, url);
/// });  // every download has finished here, or the first failure cancelled the others
/// @endcode
///
/// @par Cancellation
/// The end of the group is a checkpoint when children are still running (a cancellation of the
/// parent there is passed on to them, and rethrown once they have finished). While the group is
/// cancelling its children, the wait for them is shielded: task_group never returns while a child
/// still runs.
///
/// @par Errors
/// weave::ExceptionGroup with every child's exception (and the body's) if any failed;
/// weave::Cancelled if the parent was cancelled; std::logic_error outside a fiber.
template <class F>
auto task_group(F&& body, SourceLocation where = SourceLocation::current()) {
  return detail::TaskGroupRunner::run(body, where);
}

}  // namespace weave
